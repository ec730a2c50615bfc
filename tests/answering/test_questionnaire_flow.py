"""The patient's way through a questionnaire over HTTP: welcome, screens, review, submit, thanks."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select

from pro_service.extensions import db
from pro_service.instruments import score_instrument
from pro_service.models import Assessment, AuditEvent, Score

from .helpers import stored_answers
from pages import csrf_of, load


def _post_screen(client, link, number, answers, nav="next"):
    html = client.get(link.screen(number)).get_data(as_text=True)
    data = {"csrf_token": csrf_of(html), "screen": str(number), "nav": nav}
    data.update({f"q{item}": str(code) for item, code in answers.items()})
    return client.post(link.screen(number), data=data)


def _main(html: str) -> str:
    return html.split('<main id="main"', 1)[1].split("</main>", 1)[0]


def test_the_link_opens_a_welcome_page_in_the_patients_language(client, make_link):
    link = make_link(language="fi")
    response = client.get(link.url)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<html lang="fi">' in html
    assert "Kysymyksiä terveydestäsi ja hyvinvoinnistasi" in html
    assert "Vain tutkimusryhmä näkee vastauksesi" in html  # who sees the answers
    assert "noin 11 minuuttia" in html  # how long it takes
    assert f"/q/{link.token}/stop" in html  # how to stop the messages
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_pages_show_no_study_id_or_personal_details(app, client, link):
    from pro_service.models import Patient

    patient = load(app, Patient, link.patient_id)
    pages = [link.url, link.screen(1), f"{link.url}/review"]
    for url in pages:
        html = client.get(url).get_data(as_text=True)
        assert patient.study_id not in html
        assert "Test site" not in html


def test_the_language_switch_is_on_every_page_and_remembered(client, link):
    html = client.get(link.screen(1)).get_data(as_text=True)
    assert '<html lang="sv">' in html
    for code in ("sv", "fi", "en"):
        assert f'href="/q/{link.token}/s/1?lang={code}"' in html
    english = client.get(link.screen(1) + "?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in english
    assert "How hard is heavy physical effort for you" in english  # item text from the data
    later = client.get(link.screen(2)).get_data(as_text=True)
    assert '<html lang="en">' in later
    assert "Page 2 of 15" in later


def test_an_unknown_link_speaks_the_browsers_language(client):
    response = client.get(
        "/q/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", headers={"Accept-Language": "fi-FI,fi;q=0.9"}
    )
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert '<html lang="fi">' in html
    assert "Linkkiä ei voi käyttää" in html


def test_no_answer_is_preselected_and_progress_is_shown(client, link):
    html = client.get(link.screen(3)).get_data(as_text=True)
    assert " checked" not in html
    assert '<progress max="15" value="3"' in html
    assert "Sida 3 av 15" in html
    assert len(re.findall(r"<fieldset", html)) == 5
    assert len(re.findall(r"<legend>", html)) == 5


def test_each_screen_is_saved_when_moving_on_and_back_keeps_answers(app, client, link):
    response = _post_screen(client, link, 1, {1: 2, 2: 3})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(link.screen(2))
    assert stored_answers(app, link.assessment_id) == {1: 2, 2: 3}
    response = _post_screen(client, link, 2, {6: 4}, nav="back")
    assert response.headers["Location"].endswith(link.screen(1))
    assert stored_answers(app, link.assessment_id) == {1: 2, 2: 3, 6: 4}
    html = client.get(link.screen(1)).get_data(as_text=True)
    assert 'id="q1-2" name="q1" value="2" checked' in html
    assert 'id="q2-3" name="q2" value="3" checked' in html
    assert "checked" not in html.split('name="q3"', 1)[1].split("</fieldset>", 1)[0]
    assert load(app, Assessment, link.assessment_id).status == "in_progress"


def test_coming_back_on_another_device_resumes_at_the_first_unanswered_screen(app, link):
    first = app.test_client()
    _post_screen(first, link, 1, {1: 1, 2: 1, 3: 1, 4: 1, 5: 1})
    _post_screen(first, link, 2, {6: 2})
    other_device = app.test_client()
    response = other_device.get(link.url)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(link.screen(3))


def test_review_lists_skipped_items_and_submitting_twice_completes_once(app, client, make_link):
    link = make_link(language="en")
    registry = app.extensions["instruments"]
    c30 = registry.get("qlq-c30", "3.0")
    pan26 = registry.get("qlq-pan26", "1.0")
    answers: dict[int, int] = {}
    number = 0
    for instrument in (c30, pan26):
        for screen in instrument.screens:
            number += 1
            given = {
                n: instrument.item(n).codes[(n % len(instrument.item(n).codes))]
                for n in screen.items
            }
            if number == 3:
                given.pop(screen.items[0])  # skipped on purpose
            answers.update(given)
            assert _post_screen(client, link, number, given).status_code == 303
    skipped = next(n for n in c30.screens[2].items)
    review = client.get(f"{link.url}/review")
    html = review.get_data(as_text=True)
    assert "You have not answered 1 question." in html
    assert f"Question {skipped} (page 3)" in html
    assert f'href="/q/{link.token}/s/3?from=review"' in html
    # every answer is on the page, under its page's heading, the skipped one marked
    shown = dict(
        re.findall(
            r'<span class="item-number">(\d+)\.</span>.*?</dt>\s*<dd>(.*?)</dd>',
            unescape(html),
            flags=re.S,
        )
    )
    assert shown == {
        str(n): (
            (c30 if n in c30.items else pan26).label(n, answers[n], "en")
            if n in answers
            else '<em class="unanswered">Not answered</em>'
        )
        for n in [*c30.items, *pan26.items]
    }
    assert "Page 3: Symptoms" in html

    token = csrf_of(html)
    first = client.post(f"{link.url}/submit", data={"csrf_token": token})
    second = client.post(f"{link.url}/submit", data={"csrf_token": token})
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"].endswith(f"/q/{link.token}/thanks")
    assert second.headers["Location"].endswith(f"/q/{link.token}/thanks")
    thanks = client.get(f"{link.url}/thanks")
    assert thanks.status_code == 200
    assert "Your answers have been sent" in thanks.get_data(as_text=True)

    assert stored_answers(app, link.assessment_id) == answers
    with app.app_context():
        assessment = db.session.get(Assessment, link.assessment_id)
        assert assessment.status == "completed"
        assert assessment.language == "en"
        assert assessment.token_encrypted is None
        # The completion's time is the close and the last change; no reminder is left.
        assert assessment.completed_at is not None
        assert assessment.completed_at == assessment.closed_at == assessment.updated_at
        assert assessment.mode == "electronic"
        assert assessment.next_reminder_on is None
        completions = db.session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "assessment.completed",
                AuditEvent.object_id == str(link.assessment_id),
            )
        ).all()
        assert len(completions) == 1
        # The audit record says who, where, when and which time point, in which language.
        event = completions[0]
        assert (event.actor_type, event.actor_id) == ("patient", str(assessment.patient_id))
        assert event.site_id == assessment.patient.site_id
        assert event.object_type == "assessment"
        assert event.at == assessment.completed_at
        assert event.after == {"timepoint": assessment.timepoint, "language": "en"}
        assert event.before is None
        stored = {
            s.scale: s.value
            for s in db.session.scalars(
                select(Score).where(Score.assessment_id == link.assessment_id)
            )
        }
    expected = {
        code: score.value
        for instrument in (c30, pan26)
        for code, score in score_instrument(instrument, answers).items()
    }
    assert stored == pytest.approx(expected)


def test_a_completed_link_says_the_answers_were_received_on_another_device(app, client, link):
    html = client.get(f"{link.url}/review").get_data(as_text=True)
    client.post(f"{link.url}/submit", data={"csrf_token": csrf_of(html)})
    other = app.test_client()
    for url in (link.url, link.screen(1), f"{link.url}/thanks", f"{link.url}/review"):
        response = other.get(url)
        assert response.status_code == 200, url
        page = _main(response.get_data(as_text=True))
        assert "Dina svar har kommit fram" in page
        assert "Länken kan inte användas" not in page
        assert "<form" not in page and "radio" not in page  # no answers, nothing to send

    # In the browser that submitted, the back button leads to "thank you", not an error.
    assert client.get(link.screen(1)).headers["Location"].endswith(f"/q/{link.token}/thanks")


def test_unknown_expired_and_cancelled_links_look_exactly_alike(app, client, make_link):
    expired, cancelled = make_link(), make_link()
    with app.app_context():
        db.session.get(Assessment, cancelled.assessment_id).status = "cancelled"
        db.session.get(Assessment, expired.assessment_id).status = "expired"
        db.session.commit()
    bodies = set()
    for token in (expired.token, cancelled.token, "x" * 32, "short", "ä" * 40):
        response = client.get(f"/q/{token}")
        assert response.status_code == 404
        assert response.headers["Cache-Control"] == "no-store"
        bodies.add(_main(response.get_data(as_text=True)))
    assert len(bodies) == 1


def test_a_link_stops_working_when_its_window_has_closed_before_the_nightly_job(app, client, link):
    import time_machine

    from pro_service.clock import utcnow

    with app.app_context():
        closes = db.session.get(Assessment, link.assessment_id).window_closes
    days = (closes - utcnow().date()).days + 2
    with time_machine.travel(utcnow().timestamp() + days * 86400):
        response = client.get(link.url)
    assert response.status_code == 404
    assert load(app, Assessment, link.assessment_id).status == "open"  # the job has not run


def test_pages_work_over_https_without_a_referer(app, link):
    client = app.test_client()
    base = "https://pro.example.test"
    html = client.get(link.screen(1), base_url=base).get_data(as_text=True)
    response = client.post(
        link.screen(1),
        base_url=base,
        data={"csrf_token": csrf_of(html), "screen": "1", "q1": "1"},
    )
    assert response.status_code == 303
    assert stored_answers(app, link.assessment_id) == {1: 1}


def test_a_browser_that_had_the_link_open_sees_thank_you_only_shortly_after_completion(app, link):
    import time_machine

    phone, tablet = app.test_client(), app.test_client()
    phone.get(link.screen(1))
    html = tablet.get(f"{link.url}/review").get_data(as_text=True)
    tablet.post(f"{link.url}/submit", data={"csrf_token": csrf_of(html)})
    assert phone.get(link.url).headers["Location"].endswith(f"/q/{link.token}/thanks")
    later = app.test_client()
    later.get(link.screen(1))  # (already completed: this browser never saw it open)
    received = later.get(link.url)
    assert received.status_code == 200
    assert "Dina svar har kommit fram" in received.text  # in the patient's language
    with app.app_context():
        completed_at = db.session.get(Assessment, link.assessment_id).completed_at
    # Without having seen the thank-you page, the phone gets the kind page half an hour later.
    second_phone = app.test_client()
    second_phone.get(link.screen(1))  # completed already: nothing is remembered
    with time_machine.travel(completed_at.timestamp() + 31 * 60):
        received = second_phone.get(link.url)
        assert received.status_code == 200
        assert "Dina svar har kommit fram" in received.text
        assert phone.get(link.url).status_code == 303  # it has seen "thank you" before


def test_answering_a_skipped_question_from_the_review_page_returns_to_the_review(
    app, client, make_link
):
    link = make_link(language="en")
    _post_screen(client, link, 1, {1: 1, 2: 1, 3: 1, 4: 1})  # question 5 skipped
    review = client.get(f"{link.url}/review").text
    assert f'href="/q/{link.token}/s/1?from=review"' in review
    screen = client.get(f"{link.url}/s/1?from=review").text
    assert "Save and return to review" in screen
    assert 'name="nav" value="review"' in screen
    data = {"csrf_token": csrf_of(screen), "screen": "1", "nav": "review"}
    data.update({f"q{n}": "1" for n in (1, 2, 3, 4, 5)})
    response = client.post(link.screen(1), data=data)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/q/{link.token}/review")
    assert stored_answers(app, link.assessment_id) == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    # opened the usual way, the screen goes on to the next page
    assert "Save and return to review" not in client.get(link.screen(1)).text


def test_the_paraphrase_notice_appears_once_for_both_questionnaires(client, make_link):
    link = make_link(language="en")
    for url in (link.url + "/welcome", link.screen(1), f"{link.url}/review"):
        html = client.get(url).text
        footer = html.split('<footer class="site-footer">', 1)[1]
        assert footer.count('<p class="notice">') == 1, url
        assert "not the licensed EORTC text of" in footer
        assert "QLQ-C30" in footer and "QLQ-PAN26" in footer


def test_a_number_range_in_a_heading_is_kept_on_one_line(client, make_link):
    link = make_link(language="fi")
    html = client.get(link.screen(8)).text
    assert '<span class="nowrap">1–7</span>' in html
    assert '<p id="progress-label">' in html


def _checked(html: str) -> set[tuple[int, int]]:
    """(question, code) of every checked choice on the page."""
    return {(int(n), int(c)) for n, c in re.findall(r'name="q(\d+)" value="(\d+)" checked', html)}


def test_each_patient_sees_their_own_answers_and_language_on_the_same_screen(app, make_link):
    """The questions of a screen are kept as HTML once rendered; two patients on the same
    screen, with different answers and languages, still each see their own."""
    swedish, finnish = make_link("sv"), make_link("fi")
    clients = {"sv": app.test_client(), "fi": app.test_client()}
    assert _post_screen(clients["sv"], swedish, 1, dict.fromkeys(range(1, 6), 1)).status_code == 303
    assert _post_screen(clients["fi"], finnish, 1, {1: 4, 2: 3}).status_code == 303
    seen_sv = clients["sv"].get(swedish.screen(1)).get_data(as_text=True)
    seen_fi = clients["fi"].get(finnish.screen(1)).get_data(as_text=True)
    assert _checked(seen_sv) == {(n, 1) for n in range(1, 6)}
    assert _checked(seen_fi) == {(1, 4), (2, 3)}
    assert '<html lang="sv">' in seen_sv
    assert '<html lang="fi">' in seen_fi
    sv_labels = re.findall(r"<span>([^<]+)</span>\s*</label>", seen_sv)
    fi_labels = re.findall(r"<span>([^<]+)</span>\s*</label>", seen_fi)
    assert sv_labels and fi_labels and set(sv_labels).isdisjoint(fi_labels)
    # A new Swedish patient sees the same questions with nothing checked.
    fresh = app.test_client().get(make_link("sv").screen(1)).get_data(as_text=True)
    assert _checked(fresh) == set()
    assert re.findall(r"<span>([^<]+)</span>\s*</label>", fresh) == sv_labels
    # The Finnish patient switches to Swedish: the same answers, in the Swedish texts.
    switched = clients["fi"].get(finnish.screen(1) + "?lang=sv").get_data(as_text=True)
    assert _checked(switched) == {(1, 4), (2, 3)}
    assert re.findall(r"<span>([^<]+)</span>\s*</label>", switched) == sv_labels


def test_the_paraphrase_notice_follows_a_language_switch(client, make_link):
    """The notice is kept per language once made: switching language back and forth on one
    page shows each language's own notice, never the one made first."""
    link = make_link(language="en")
    notices = {}
    for lang in ("en", "sv", "fi", "en", "sv"):
        html = client.get(f"{link.screen(1)}?lang={lang}").text
        assert f'<html lang="{lang}">' in html
        footer = html.split('<footer class="site-footer">', 1)[1]
        notices.setdefault(lang, footer)
        assert footer == notices[lang], lang  # the same as the first time in this language
    assert "not the licensed EORTC text of" in notices["en"]
    assert "omskrivningar" in notices["sv"]
    assert len(set(notices.values())) == 3


def _review_answers(html: str) -> dict[int, str]:
    """Question number -> the answer shown for it on the review page."""
    return {
        int(n): answer
        for n, answer in re.findall(
            r'<span class="item-number">(\d+)\.</span>.*?</dt>\s*<dd>(.*?)</dd>',
            unescape(html),
            flags=re.S,
        )
    }


def test_the_review_page_shows_each_patient_their_own_answers_in_their_language(app, make_link):
    """The review page's questions and headings are kept as HTML once rendered, per question,
    answer and language: two patients with different answers and languages each see their
    own, and a language switch shows the same answers in the other language."""
    c30 = app.extensions["instruments"].get("qlq-c30", "3.0")
    swedish, finnish = make_link("sv"), make_link("fi")
    clients = {"sv": app.test_client(), "fi": app.test_client()}
    assert _post_screen(clients["sv"], swedish, 1, dict.fromkeys(range(1, 6), 1)).status_code == 303
    assert _post_screen(clients["fi"], finnish, 1, {1: 4, 2: 3}).status_code == 303

    def review(client, link, lang):  # type: ignore[no-untyped-def]
        html = client.get(f"{link.url}/review?lang={lang}").text
        assert f'<html lang="{lang}">' in html
        return html

    seen_sv = review(clients["sv"], swedish, "sv")
    seen_fi = review(clients["fi"], finnish, "fi")
    assert {n: a for n, a in _review_answers(seen_sv).items() if n <= 5} == {
        n: c30.label(n, 1, "sv") for n in range(1, 6)
    }
    shown_fi = _review_answers(seen_fi)
    assert shown_fi[1] == c30.label(1, 4, "fi") and shown_fi[2] == c30.label(2, 3, "fi")
    assert shown_fi[3] == '<em class="unanswered">Ei vastausta</em>'
    assert f"Sivu 1: {c30.screens[0].heading['fi']}" in unescape(seen_fi)
    assert f"Sida 1: {c30.screens[0].heading['sv']}" in unescape(seen_sv)
    # The Finnish patient switches to Swedish and back: the same answers in each language.
    switched = _review_answers(review(clients["fi"], finnish, "sv"))
    assert switched[1] == c30.label(1, 4, "sv") and switched[2] == c30.label(2, 3, "sv")
    assert switched[3] == '<em class="unanswered">Inte besvarad</em>'
    assert _review_answers(review(clients["fi"], finnish, "fi")) == shown_fi


def _screen_texts(html: str) -> tuple[str, str, str, str]:
    """A screen's title, progress line, heading and main button, as the patient reads them."""
    title = re.search(r"<title>(.*?) – ", html, re.S)
    progress = re.search(r'<p id="progress-label">(.*?)</p>', html, re.S)
    heading = re.search(r"<h1>(.*?)</h1>", html, re.S)
    button = re.search(r'<button type="submit" name="nav" value="\w+" [^>]*primary">(.*?)<', html)
    assert title and progress and heading and button
    return tuple(  # type: ignore[return-value]
        re.sub(r"<[^>]+>", "", unescape(m.group(1))).strip()
        for m in (title, progress, heading, button)
    )


def test_a_screens_texts_follow_the_language_and_the_way_in(client, make_link):
    """A screen's own texts are kept once made, per language, screen and way in: switching
    language back and forth, coming from the review page and reaching the last page each
    show their own texts, never the ones made first."""
    link = make_link(language="en")
    seen = {}
    for lang in ("en", "fi", "sv", "en", "fi"):
        texts = _screen_texts(client.get(f"{link.screen(8)}?lang={lang}").text)
        assert seen.setdefault(lang, texts) == texts, lang
    assert seen["en"][:2] == ("Page 8 of 15", "Page 8 of 15")
    assert seen["sv"][:2] == ("Sida 8 av 15", "Sida 8 av 15")
    assert seen["fi"][0] == "Sivu 8/15"
    assert seen["en"][3] == "Next" and seen["sv"][3] == "Nästa"
    assert len({texts[2] for texts in seen.values()}) == 3  # the heading in each language
    client.get(f"{link.screen(8)}?lang=en")
    from_review = _screen_texts(client.get(f"{link.screen(8)}?from=review").text)
    assert from_review[:3] == seen["en"][:3]
    assert from_review[3] == "Save and return to review"
    assert _screen_texts(client.get(link.screen(8)).text) == seen["en"]
    last = _screen_texts(client.get(link.screen(15)).text)
    assert last[:2] == ("Page 15 of 15", "Page 15 of 15") and last[3] == "Go to review"
    # The form sends the answers to the screen's own address, whatever the query.
    page = client.get(f"{link.screen(8)}?from=review&lang=fi").text
    assert f'<form method="post" action="/q/{link.token}/s/8" novalidate>' in page
    assert f'href="/q/{link.token}/s/8?lang=sv"' in page
