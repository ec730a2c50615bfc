"""Tampered or broken requests get a clear 400 in the patient's language and save nothing."""

from __future__ import annotations

import pytest

from pro_service.models import Assessment, Patient

from .helpers import stored_answers
from pages import csrf_of, load


@pytest.fixture
def finnish_link(make_link):
    return make_link(language="fi")


def _form(client, link, number=1):
    html = client.get(link.screen(number)).get_data(as_text=True)
    return {"csrf_token": csrf_of(html), "screen": str(number), "nav": "next"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"q1": "2", "q99": "1"}, "Vastauksissa oli kysymys 99, joka ei ole tällä sivulla."),
        ({"q1": "2", "q6": "1"}, "Vastauksissa oli kysymys 6, joka ei ole tällä sivulla."),
        ({"q1": "2", "q2": "5"}, "Vastaus kysymykseen 2 ei ole mikään tämän sivun"),
        ({"q1": "0"}, "Vastaus kysymykseen 1 ei ole mikään tämän sivun"),
        ({"q1": "two"}, "Vastaus kysymykseen 1 ei ole mikään tämän sivun"),
        ({"q1": "-1"}, "Vastaus kysymykseen 1 ei ole mikään tämän sivun"),
        ({"q1": ["1", "2"]}, "Kysymykseen 1 vastattiin samalla sivulla useammin kuin kerran."),
        ({"q1": "1", "q01": "2"}, "Sivu lähetti jotain, mikä ei ole vastaus."),
        ({"q1": "1", "screen": "2"}, "Vastaukset lähetettiin eri sivulle."),
        ({"q1": "1", "nav": "jump"}, "Sivu lähetti tuntemattoman painikkeen."),
        ({"q1": "1", "patient_id": "7"}, "Sivu lähetti jotain, mikä ei ole vastaus."),
    ],
)
def test_a_tampered_screen_is_refused_in_the_patients_language_and_nothing_is_saved(
    app, client, finnish_link, fields, message
):
    data = {**_form(client, finnish_link), **fields}
    response = client.post(finnish_link.screen(1), data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert '<html lang="fi">' in html
    assert "Tämän sivun vastauksia ei tallennettu" in html
    assert message in html
    assert stored_answers(app, finnish_link.assessment_id) == {}
    assert load(app, Assessment, finnish_link.assessment_id).status == "open"


def test_answers_for_an_instrument_the_assessment_does_not_have_are_refused(app, make_link):
    link = make_link(language="en", instruments=["qlq-c30:3.0"])
    client = app.test_client()
    html = client.get(link.screen(8)).get_data(as_text=True)  # the last C30 screen
    assert "Page 8 of 8" in html
    data = {"csrf_token": csrf_of(html), "screen": "8", "q29": "4", "q31": "2"}
    response = client.post(link.screen(8), data=data)
    assert response.status_code == 400
    assert "question 31, which is not on this page" in response.get_data(as_text=True)
    assert stored_answers(app, link.assessment_id) == {}
    assert client.get(link.screen(9)).status_code == 400


@pytest.mark.parametrize("number", ["0", "16", "abc", "99999999999", "-1"])
def test_an_unknown_screen_number_is_a_400_in_the_patients_language(client, finnish_link, number):
    response = client.get(finnish_link.screen(number))
    assert response.status_code == 400
    assert "Tätä sivua ei ole kyselyssä." in response.get_data(as_text=True)


@pytest.mark.parametrize("csrf", [None, "", "not-a-token", "IjA0ZjE.awpagA.g8D0ppLe7N_utK8l6Q4qA"])
def test_a_missing_or_wrong_csrf_token_is_refused_and_nothing_is_saved(
    app, client, finnish_link, csrf
):
    data = {"screen": "1", "q1": "2"}
    client.get(finnish_link.screen(1))
    if csrf is not None:
        data["csrf_token"] = csrf
    response = client.post(finnish_link.screen(1), data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert '<html lang="fi">' in html
    assert "Sivu on vanhentunut turvallisuussyistä" in html
    assert response.headers["Cache-Control"] == "no-store"
    assert stored_answers(app, finnish_link.assessment_id) == {}


def test_csrf_is_checked_on_submit_and_opt_out_too(app, client, finnish_link):
    client.get(finnish_link.url)
    assert client.post(f"{finnish_link.url}/submit", data={}).status_code == 400
    assert client.post(f"{finnish_link.url}/stop", data={}).status_code == 400
    assert load(app, Assessment, finnish_link.assessment_id).status == "open"
    assert load(app, Patient, finnish_link.patient_id).opted_out is False


def test_an_oversized_body_is_refused_kindly_and_nothing_is_saved(app, client, finnish_link):
    data = {**_form(client, finnish_link), "q1": "2", "padding": "x" * 70_000}
    response = client.post(finnish_link.screen(1), data=data)
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "Sivu lähetti enemmän tietoa kuin kyselysivulle mahtuu." in html
    assert stored_answers(app, finnish_link.assessment_id) == {}


def test_an_unexpected_fault_shows_a_kind_page_not_a_traceback(app, finnish_link, monkeypatch):
    from pro_service.answering import questionnaire

    def broken(*args, **kwargs):
        raise RuntimeError("simulated fault")

    monkeypatch.setattr(questionnaire, "flow_for", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get(finnish_link.screen(1))
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Meillä tapahtui virhe. Aiemmin tallentamasi vastaukset ovat tallessa." in html
    assert "Traceback" not in html
    assert response.headers["Cache-Control"] == "no-store"
