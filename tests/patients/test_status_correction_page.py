"""A nurse corrects a leaving status recorded by mistake, on the status page, with a reason."""

from __future__ import annotations

from pro_service.models import Patient

from pages import csrf_of, read


def test_a_nurse_corrects_not_operated_recorded_for_the_wrong_patient(app, sign_in, staff_study):
    patient_id = staff_study.patients["UPP-001"]
    client = sign_in("nurse_upp")
    url = f"/staff/patients/{patient_id}/status"
    page = client.get(f"{url}?lang=en")
    form = {
        "csrf_token": csrf_of(page.text),
        "status": "not_operated",
        "status_date": read(app, lambda s: s.get(Patient, patient_id).inclusion_date).isoformat(),
        "reason": "progression",
    }
    client.post(url, data=form)
    done = client.post(url, data={**form, "confirmed": "yes"})
    assert done.status_code == 302
    assert read(app, lambda s: s.get(Patient, patient_id).status) == "not_operated"

    page = client.get(f"{url}?lang=en").text
    assert "Correct a status recorded by mistake" in page
    token = csrf_of(page)
    refused = client.post(f"{url}/correct?lang=en", data={"csrf_token": token, "reason": " "})
    assert refused.status_code == 400
    assert "A reason is required for every change to study data." in refused.text
    assert read(app, lambda s: s.get(Patient, patient_id).status) == "not_operated"

    corrected = client.post(
        f"{url}/correct?lang=en",
        data={"csrf_token": token, "reason": "entered for the wrong patient"},
        follow_redirects=True,
    )
    assert corrected.status_code == 200
    assert "The patient&#39;s status is now: Active." in corrected.text  # the flash, escaped
    assert read(app, lambda s: s.get(Patient, patient_id).status) == "active"
