"""A patient whose last time point is answered, missed or partial is "follow-up complete": once,
audited, in the scheduler's job; not while a time point is left or the surgery date (and so
the later time points) is unknown."""

from __future__ import annotations

from datetime import UTC, date, datetime

import time_machine
from sqlalchemy import select

from pro_service.models import AuditEvent, Patient
from pro_service.patients.board import BoardFilters, load_board
from pro_service.patients.follow_up import complete_finished_follow_ups
from pro_service.scheduler.jobs import job_follow_up
from pro_service.scheduling.assessments import update_windows

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
#: After the last window (24 months after a surgery in April 2026, plus 21 days) has closed.
AFTER_ALL = datetime(2028, 6, 1, 10, 0, tzinfo=UTC)


def test_the_last_time_point_closing_completes_the_follow_up_once(
    app, session, make_site, make_patient
):
    site = make_site()
    operated = make_patient(site, surgery_date=date(2026, 4, 20))
    no_surgery = make_patient(site)  # only the baseline exists: more time points to come
    session.commit()
    schedule = app.extensions["schedule"]
    assert complete_finished_follow_ups(session, now=NOW, schedule=schedule) == 0

    update_windows(session, now=AFTER_ALL, vault=app.extensions["vault"])
    session.commit()
    assert {a.status for a in operated.assessments} == {"expired"}
    assert complete_finished_follow_ups(session, now=AFTER_ALL, schedule=schedule) == 1
    session.commit()
    assert complete_finished_follow_ups(session, now=AFTER_ALL, schedule=schedule) == 0

    session.expire_all()
    assert session.get(Patient, operated.id).status == "completed"
    assert session.get(Patient, no_surgery.id).status == "active"
    (event,) = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.follow_up_completed")
    ).all()
    assert (event.object_id, event.actor_type) == (str(operated.id), "system")


def test_a_time_point_left_keeps_the_patient_active(app, session, make_site, make_patient):
    site = make_site()
    patient = make_patient(site, surgery_date=date(2026, 4, 20))
    session.commit()
    before_last = datetime(2028, 3, 1, 10, 0, tzinfo=UTC)  # m24 (due 20 April 2028) to come
    update_windows(session, now=before_last, vault=app.extensions["vault"])
    session.commit()
    assert "scheduled" in {a.status for a in patient.assessments}
    assert (
        complete_finished_follow_ups(session, now=before_last, schedule=app.extensions["schedule"])
        == 0
    )


def test_the_scheduler_job_runs_it_and_the_board_filters_by_it(
    app, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site, surgery_date=date(2026, 4, 20))
    session.commit()
    update_windows(session, now=AFTER_ALL, vault=app.extensions["vault"])
    session.commit()
    with time_machine.travel(AFTER_ALL, tick=False):
        assert job_follow_up() == "follow-up complete 1"
    session.expire_all()
    assert session.get(Patient, patient.id).status == "completed"

    board = load_board(
        session,
        now=AFTER_ALL,
        site=site,
        timepoints=[tp.key for tp in app.extensions["schedule"].timepoints],
        filters=BoardFilters(patient_status="completed"),
    )
    assert [row.study_id for row in board.rows] == [patient.study_id]
