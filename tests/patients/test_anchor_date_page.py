"""The nurse's pages for "not operated" and its decision date: the status page records the date
and shows the follow-up that begins; the patient page shows the date and links to correcting it;
a correction needs a reason, a contradicting date is refused next to its field; the timeline
says what moved."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pro_service.models import Patient

from pages import csrf_of, read


def _inclusion(app, patient_id):  # type: ignore[no-untyped-def]
    return read(app, lambda s: s.get(Patient, patient_id).inclusion_date)


def _record_not_operated(app, client, patient_id, decided):  # type: ignore[no-untyped-def]
    url = f"/staff/patients/{patient_id}/status"
    form = {
        "csrf_token": csrf_of(client.get(f"{url}?lang=en").text),
        "status": "not_operated",
        "status_date": decided.isoformat(),
        "reason": "progression during chemotherapy",
    }
    confirm = client.post(f"{url}?lang=en", data=form)
    assert confirm.status_code == 200
    assert "The follow-up continues" in confirm.text
    assert "3 months after the decision not to operate" in confirm.text
    done = client.post(url, data={**form, "confirmed": "yes"})
    assert done.status_code == 302


def test_a_nurse_records_not_operated_and_corrects_the_decision_date(app, sign_in, staff_study):
    patient_id = staff_study.patients["UPP-001"]
    client = sign_in("nurse_upp")
    inclusion = _inclusion(app, patient_id)
    _record_not_operated(app, client, patient_id, inclusion + timedelta(days=2))

    page = client.get(f"/staff/patients/{patient_id}?lang=en").text
    assert "Decision not to operate" in page
    assert (inclusion + timedelta(days=2)).isoformat() in page
    assert "Record or correct the date: Decision not to operate" in page
    assert "Follow-up after Not operated: due" in page

    status_page = client.get(f"/staff/patients/{patient_id}/status?lang=en").text
    assert "The follow-up continues with the time points counted from that date." in status_page

    url = f"/staff/patients/{patient_id}/dates/no_surgery_decision"
    form_page = client.get(f"{url}?lang=en").text
    assert f"Current date: {(inclusion + timedelta(days=2)).isoformat()}." in form_page
    token = csrf_of(form_page)

    future = client.post(
        f"{url}?lang=en",
        data={
            "csrf_token": token,
            "day": (inclusion + timedelta(days=400)).isoformat(),
            "reason": "typed the wrong year",
        },
    )
    assert future.status_code == 200
    assert (
        "The date of “Decision not to operate” is in the future."
        in future.text.split('id="day-errors"', 1)[1]
    )
    no_reason = client.post(
        f"{url}?lang=en",
        data={"csrf_token": token, "day": (inclusion + timedelta(days=5)).isoformat()},
    )
    assert "A reason is required" in no_reason.text.split('id="reason-errors"', 1)[1]
    assert read(app, lambda s: s.get(Patient, patient_id).recorded_anchors[0].day) == (
        inclusion + timedelta(days=2)
    )

    saved = client.post(
        f"{url}?lang=en",
        data={
            "csrf_token": token,
            "day": (inclusion + timedelta(days=5)).isoformat(),
            "reason": "the conference was on the 5th",
        },
        follow_redirects=True,
    )
    assert saved.status_code == 200
    assert "The date is saved: Decision not to operate." in saved.text
    assert read(app, lambda s: s.get(Patient, patient_id).recorded_anchors[0].day) == (
        inclusion + timedelta(days=5)
    )
    assert "Decision not to operate changed: due" in saved.text
    assert "Reason: the conference was on the 5th" in saved.text


def test_the_decision_date_page_of_an_active_patient_changes_nothing(app, sign_in, staff_study):
    patient_id = staff_study.patients["UPP-002"]
    client = sign_in("nurse_upp")
    url = f"/staff/patients/{patient_id}/dates/no_surgery_decision"
    page = client.get(f"{url}?lang=en")
    assert page.status_code == 200
    assert "This date cannot be changed for the patient's current status (Active)." in page.text
    refused = client.post(
        url, data={"csrf_token": csrf_of(page.text), "day": "2026-01-01", "reason": "x"}
    )
    assert refused.status_code == 400
    assert read(app, lambda s: s.get(Patient, patient_id).recorded_anchors) == []
    assert client.get(f"/staff/patients/{patient_id}/dates/chemo_start").status_code == 404
    assert client.get(f"/staff/patients/{patient_id}/dates/inclusion").status_code == 404
    surgery = client.get(f"/staff/patients/{patient_id}/dates/surgery")
    assert surgery.status_code == 302 and surgery.headers["Location"].endswith("/surgery")


@pytest.mark.parametrize("language", ["sv", "fi"])
def test_the_status_and_date_pages_render_in_swedish_and_finnish(
    app, sign_in, staff_study, language
):
    patient_id = staff_study.patients["UPP-001"]
    client = sign_in("nurse_upp")
    _record_not_operated(app, client, patient_id, _inclusion(app, patient_id) + timedelta(days=1))
    for path in ("status", "dates/no_surgery_decision", ""):
        response = client.get(
            f"/staff/patients/{patient_id}/{path}?lang={language}".replace("/?", "?")
        )
        assert response.status_code == 200, path
        assert f'<html lang="{language}">' in response.text
    label = {"sv": "Beslut att inte operera", "fi": "Päätös olla leikkaamatta"}[language]
    assert label in response.text
