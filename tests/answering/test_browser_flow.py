"""A patient on a phone in Chromium: Swedish first, a break, then Finnish to the end."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from pro_service.extensions import db
from pro_service.instruments import score_instrument
from pro_service.models import Assessment, Response, Score

from browser import PHONE, chromium, serve

pytestmark = pytest.mark.browser


def _plan(registry) -> dict[int, int]:
    """A varied answer for every item of C30 and PAN26 (no two neighbours alike)."""
    plan = {}
    for key in (("qlq-c30", "3.0"), ("qlq-pan26", "1.0")):
        instrument = registry.get(*key)
        for number, item in instrument.items.items():
            plan[number] = item.codes[(number * 3) % len(item.codes)]
    return plan


def _answer_screen(page, plan: dict[int, int]) -> list[int]:
    """Tick the planned answer of every item on the page by tapping its label."""
    names = page.eval_on_selector_all(
        "fieldset.item input[type=radio]", "els => [...new Set(els.map(e => e.name))]"
    )
    assert page.locator("input[type=radio]:checked").count() == 0  # nothing pre-selected
    items = [int(name[1:]) for name in names]
    for item in items:
        page.locator(f"label[for=q{item}-{plan[item]}]").click()
    return items


def test_a_patient_answers_everything_in_swedish_then_finnish_after_a_break(app, make_link):
    link = make_link(language="sv")
    registry = app.extensions["instruments"]
    plan = _plan(registry)
    swedish_items: list[int] = []
    finnish_items: list[int] = []
    with serve(app) as base, chromium() as browser:
        # First sitting, in Swedish (the patient's stored language), on a phone.
        context = browser.new_context(viewport=PHONE, locale="en-GB")
        page = context.new_page()
        page.goto(f"{base}/q/{link.token}")
        assert page.locator("html").get_attribute("lang") == "sv"
        page.get_by_role("link", name="Börja").click()
        for number in range(1, 8):
            expect(page.locator("#progress-label")).to_have_text(f"Sida {number} av 15")
            swedish_items += _answer_screen(page, plan)
            if number == 2:
                # Back keeps the answers just given on screen 2 and those of screen 1.
                page.get_by_role("button", name="Tillbaka").click()
                expect(page.locator("#progress-label")).to_have_text("Sida 1 av 15")
                expect(page.locator("input[type=radio]:checked")).to_have_count(5)
                page.get_by_role("button", name="Nästa").click()
                expect(page.locator("#progress-label")).to_have_text("Sida 2 av 15")
                expect(page.locator("input[type=radio]:checked")).to_have_count(2)
            page.get_by_role("button", name="Nästa").click()
        context.close()  # the phone is put away halfway

        # Second sitting on another device: resumes at screen 8, switches to Finnish.
        context = browser.new_context(viewport=PHONE, locale="sv-SE")
        page = context.new_page()
        page.goto(f"{base}/q/{link.token}")
        expect(page.locator("#progress-label")).to_have_text("Sida 8 av 15")
        page.get_by_role("link", name="Suomi").click()
        assert page.locator("html").get_attribute("lang") == "fi"
        for number in range(8, 16):
            expect(page.locator("#progress-label")).to_have_text(f"Sivu {number}/15")
            finnish_items += _answer_screen(page, plan)
            page.locator("button[value=next]").click()
        expect(page.locator("h1")).to_have_text("Tarkista vastauksesi")
        assert "Olet vastannut kaikkiin kysymyksiin." in page.content()
        page.get_by_role("button", name="Lähetä vastaukseni").click()
        expect(page.locator("h1")).to_have_text("Kiitos")
        context.close()

    assert sorted(swedish_items + finnish_items) == sorted(plan)
    with app.app_context():
        session = db.session
        rows = session.scalars(
            select(Response).where(Response.assessment_id == link.assessment_id)
        ).all()
        assert {r.item_number: r.code for r in rows} == plan
        languages = {r.item_number: r.language for r in rows}
        assert {languages[i] for i in swedish_items} == {"sv"}
        assert {languages[i] for i in finnish_items} == {"fi"}
        assessment = session.get(Assessment, link.assessment_id)
        assert assessment.status == "completed"
        assert assessment.language == "fi"
        stored = {
            s.scale: s.value
            for s in session.scalars(select(Score).where(Score.assessment_id == assessment.id))
        }
    expected = {}
    for key in (("qlq-c30", "3.0"), ("qlq-pan26", "1.0")):
        for code, score in score_instrument(registry.get(*key), plan).items():
            expected[code] = score.value
    assert stored == pytest.approx(expected)
    assert len(stored) == len(expected) > 20


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_questionnaire_works_with_javascript_switched_off(app, make_link):
    link = make_link(language="en")
    with serve(app) as base, chromium() as browser:
        context = browser.new_context(viewport=PHONE, java_script_enabled=False)
        page = context.new_page()
        page.goto(f"{base}/q/{link.token}")
        page.get_by_role("link", name="Start").click()
        page.locator("label[for=q1-3]").click()
        page.get_by_role("button", name="Next").click()
        expect(page.locator("#progress-label")).to_have_text("Page 2 of 15")
        page.get_by_role("link", name="Suomi").click()
        assert page.locator("html").get_attribute("lang") == "fi"
        context.close()
    with app.app_context():
        rows = db.session.scalars(
            select(Response).where(Response.assessment_id == link.assessment_id)
        ).all()
        assert [(r.item_number, r.code, r.language) for r in rows] == [(1, 3, "en")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_patient_checks_every_answer_fixes_a_skipped_one_and_the_link_then_says_received(
    app, make_link
):
    """At 320 px: a skipped question is answered from the review page and leads back to it;
    the review shows every answer; the disclaimer appears once; the used link, opened again
    on another phone, says the answers were received."""
    link = make_link(language="en")
    registry = app.extensions["instruments"]
    plan = _plan(registry)
    c30, pan26 = registry.get("qlq-c30", "3.0"), registry.get("qlq-pan26", "1.0")
    with serve(app) as base, chromium() as browser:
        context = browser.new_context(viewport={"width": 320, "height": 640}, locale="en-GB")
        page = context.new_page()
        page.goto(f"{base}/q/{link.token}")
        page.get_by_role("link", name="Start").click()
        for number in range(1, 16):
            expect(page.locator("#progress-label")).to_have_text(f"Page {number} of 15")
            names = page.eval_on_selector_all(
                "fieldset.item input[type=radio]", "els => [...new Set(els.map(e => e.name))]"
            )
            for item in (int(name[1:]) for name in names):
                if item != 7:  # question 7 is skipped
                    page.locator(f"label[for=q{item}-{plan[item]}]").click()
            expect(page.locator("footer .notice")).to_have_count(1)
            page.locator("button[value=next]").click()
        expect(page.locator("h1")).to_have_text("Check your answers")
        assert "You have not answered 1 question." in page.content()
        expect(page.locator(".review-answer dd .unanswered")).to_have_count(1)

        page.locator(".missing a").click()
        expect(page.get_by_role("button", name="Save and return to review")).to_be_visible()
        page.locator(f"label[for=q7-{plan[7]}]").click()
        page.get_by_role("button", name="Save and return to review").click()
        expect(page.locator("h1")).to_have_text("Check your answers")
        assert "You have answered every question." in page.content()
        shown = page.locator(".review-answer dd").all_inner_texts()
        expected = [
            (c30 if n in c30.items else pan26).label(n, plan[n], "en")
            for n in [*c30.items, *pan26.items]
        ]
        assert shown == expected
        page.get_by_role("button", name="Send my answers").click()
        expect(page.locator("h1")).to_have_text("Thank you")

        other = browser.new_context(viewport={"width": 320, "height": 640}, locale="en-GB")
        again = other.new_page()
        response = again.goto(f"{base}/q/{link.token}")
        assert response.status == 200
        expect(again.locator("h1")).to_have_text("Your answers have been received")
        assert again.locator("form").count() == 0
        other.close()
        context.close()
