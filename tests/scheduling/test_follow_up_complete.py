"""A patient's status becomes "follow-up completed" once no time point is left to open or
answer, whether the last one was answered or its window closed; never while a surgery date (an
anchor still to come) is missing."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from pro_service.answering.responses import complete_assessment
from pro_service.audit import Actor
from pro_service.models import AuditEvent, Patient
from pro_service.scheduler.jobs import run_job


def _close_all_but_last(patient: Patient, last_status: str) -> None:
    ordered = sorted(patient.assessments, key=lambda a: a.window_opens)
    for assessment in ordered[:-1]:
        assessment.status = "completed"
    ordered[-1].status = last_status


def test_the_last_window_closing_completes_the_follow_up(app, session, make_site, make_patient):
    site = make_site("SE-FUP")
    today = date.today()
    patient = make_patient(
        site,
        study_id="FUP-1",
        inclusion_date=today - timedelta(days=810),
        surgery_date=today - timedelta(days=800),
    )
    waiting = make_patient(site, study_id="FUP-2", inclusion_date=today - timedelta(days=100))
    _close_all_but_last(patient, "open")
    for assessment in waiting.assessments:  # no surgery date yet: more time points will come
        assessment.status = "expired"
    session.commit()
    last = max(patient.assessments, key=lambda a: a.window_opens)
    assert last.window_closes < today  # its window is over: the next pass closes it

    summary = run_job(app, "windows")
    assert "follow-up complete 1" in summary
    session.expire_all()
    assert session.get(Patient, patient.id).status == "completed"
    assert session.get(Patient, waiting.id).status == "active"
    (event,) = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.follow_up_completed")
    ).all()
    assert event.object_id == str(patient.id)
    assert (event.before, event.after) == ({"status": "active"}, {"status": "completed"})
    assert "follow-up complete" not in run_job(app, "windows")  # once


def test_answering_the_last_time_point_completes_the_follow_up(
    app, session, make_site, make_patient
):
    site = make_site("SE-FUQ")
    today = date.today()
    patient = make_patient(
        site,
        study_id="FUQ-1",
        inclusion_date=today - timedelta(days=740),
        surgery_date=today - timedelta(days=720),
    )
    _close_all_but_last(patient, "in_progress")
    session.commit()
    last = max(patient.assessments, key=lambda a: a.window_opens)
    assert complete_assessment(
        session,
        now=patient.created_at,
        assessment=last,
        registry=app.extensions["instruments"],
        language="sv",
        actor=Actor("patient", str(patient.id)),
    )
    session.commit()
    assert session.get(Patient, patient.id).status == "completed"
    (event,) = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.follow_up_completed")
    ).all()
    assert event.actor_type == "patient"
