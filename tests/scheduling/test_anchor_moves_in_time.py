"""Anchor moves against the clock: a surgery date moved across the spring daylight-saving change
gives windows that open and close at local midnight on both sides of it, and a scheduler pass
running while a nurse moves the date leaves one consistent state."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import time_machine
from sqlalchemy import select

from pro_service.extensions import db
from pro_service.models import Assessment, Patient
from pro_service.scheduler.jobs import job_windows
from pro_service.scheduling.assessments import update_windows

from builders import move_surgery

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # CET (UTC+1); CEST (UTC+2) from 29 March


def _preop(session, patient_id):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalars(
        select(Assessment).where(
            Assessment.patient_id == patient_id, Assessment.timepoint == "preop"
        )
    ).one()


def test_a_surgery_moved_across_the_dst_change_closes_at_local_midnight(
    app, session, make_site, make_patient
):
    site = make_site()  # Europe/Stockholm
    patient = make_patient(site, inclusion_date=date(2026, 3, 2), surgery_date=date(2026, 3, 20))
    session.commit()
    # After the change to summer time:
    move_surgery(app, session, patient, date(2026, 4, 3), now=NOW, reason="theatre list moved")
    preop = _preop(session, patient.id)
    assert (preop.window_opens, preop.window_closes) == (date(2026, 3, 13), date(2026, 4, 2))

    vault = app.extensions["vault"]
    update_windows(session, now=NOW, vault=vault)
    session.commit()
    assert _preop(session, patient.id).status == "open"
    # 2 April 21:30 UTC is 23:30 summer time in Stockholm: still the closing day.
    update_windows(session, now=datetime(2026, 4, 2, 21, 30, tzinfo=UTC), vault=vault)
    session.commit()
    assert _preop(session, patient.id).status == "open"
    # 22:30 UTC is 00:30 on 3 April (with winter time's UTC+1 it would still be 23:30).
    update_windows(session, now=datetime(2026, 4, 2, 22, 30, tzinfo=UTC), vault=vault)
    session.commit()
    assert _preop(session, patient.id).status == "expired"


def test_a_scheduler_pass_while_a_nurse_moves_the_date_leaves_one_consistent_state(
    app, session, make_site, make_patient
):
    """The nurse moves surgery later (the open "before surgery" window goes back to scheduled)
    while the scheduler's windows pass runs in another thread: whichever commits first, the
    time point ends with the new window and a status that fits it, never the old one's."""
    site = make_site()
    patient = make_patient(site, inclusion_date=date(2026, 3, 2), surgery_date=date(2026, 3, 25))
    session.commit()
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    session.commit()
    assert _preop(session, patient.id).status == "open"
    patient_id = patient.id
    session.close()

    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def scheduler() -> None:
        with app.app_context():  # its session closes with the context
            try:
                with time_machine.travel(NOW, tick=True):
                    start.wait()
                    for _ in range(5):
                        job_windows()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    def nurse() -> None:
        with app.app_context():  # its session closes with the context
            try:
                moving = db.session.get(Patient, patient_id)
                start.wait()
                move_surgery(app, db.session, moving, date(2026, 5, 4), now=NOW, reason="postponed")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=scheduler), threading.Thread(target=nurse)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors

    with time_machine.travel(NOW, tick=True):
        job_windows()  # one more pass after both
    preop = _preop(db.session, patient_id)
    assert (preop.due_date, preop.window_opens) == (date(2026, 4, 27), date(2026, 4, 13))
    assert preop.status == "scheduled"  # the new window lies ahead: not open, not missed
    assert preop.token_encrypted is None
