"""The patient page's timeline says, under each time point, what changed it and why: a moved
surgery date (due dates before and after), a cancellation with the patient's status, a missing
reason, a paper entry; each with the reason recorded."""

from __future__ import annotations

from datetime import timedelta

from pro_service.audit import Actor
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import Patient

from builders import leave, move_surgery


def _page(sign_in, patient_id):  # type: ignore[no-untyped-def]
    return sign_in("nurse_upp").get(f"/staff/patients/{patient_id}?lang=en").text


def test_the_timeline_shows_each_change_and_its_reason(app, sign_in, staff_study):
    patient_id = staff_study.patients["UPP-001"]
    now = utcnow()
    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        old_surgery = patient.surgery_date
        new_surgery = old_surgery + timedelta(days=21)
        preop_before = next(a.due_date for a in patient.assessments if a.timepoint == "preop")
        nurse = Actor.staff(staff_study.users["nurse_upp"])
        move_surgery(
            app, db.session, patient, new_surgery, now=now, reason="theatre list full", actor=nurse
        )
    page = _page(sign_in, patient_id)
    preop_after = (preop_before + timedelta(days=21)).isoformat()
    assert f"Surgery date changed: due {preop_before.isoformat()}, now {preop_after}" in page
    assert "Reason: theatre list full" in page

    with app.app_context():
        patient = db.session.get(Patient, patient_id)
        leave(
            app,
            db.session,
            patient,
            "not_operated",
            now=now,
            reason="progression on chemotherapy",
            actor=Actor.staff(staff_study.users["nurse_upp"]),
        )
        db.session.commit()
    page = _page(sign_in, patient_id)
    assert "Cancelled: Not operated. Reason: progression on chemotherapy" in page
