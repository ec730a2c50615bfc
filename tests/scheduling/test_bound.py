"""A time point bounded by an anchor: ScanPan's baseline is answered at the latest the day before
surgery, however near surgery is to inclusion. Its window is cut there, and grows back when
surgery moves later; a bound before the window opens means the time point is not expected; a
started one keeps its answers and closes as partial once the bound has passed. SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from pro_service.answering.responses import save_answers, score_partial
from pro_service.messaging.outbox import reminder_days
from pro_service.models import Score
from pro_service.scheduling.assessments import registration_outlook, update_windows

from builders import move_surgery

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # Monday 16 March, 11:00 in Stockholm


def _by_key(patient):  # type: ignore[no-untyped-def]
    return {a.timepoint: a for a in patient.assessments}


def test_surgery_five_days_after_inclusion_cuts_the_baseline_to_the_day_before(
    app, session, make_site, make_patient
):
    patient = make_patient(
        make_site(), inclusion_date=date(2026, 3, 16), surgery_date=date(2026, 3, 21)
    )
    baseline = _by_key(patient)["baseline"]
    assert (baseline.window_opens, baseline.window_closes) == (date(2026, 3, 16), date(2026, 3, 20))
    # Reminders fall inside the shorter window: day 3, and the last chance 3 days before its end.
    schedule = app.extensions["schedule"]
    assert reminder_days(baseline, schedule) == [date(2026, 3, 17), date(2026, 3, 19)]


def test_surgery_on_the_day_of_inclusion_means_no_baseline_until_it_moves(
    app, session, make_site, make_patient
):
    patient = make_patient(
        make_site(), inclusion_date=date(2026, 3, 16), surgery_date=date(2026, 3, 16)
    )
    baseline = _by_key(patient)["baseline"]
    assert baseline.status == "cancelled"  # not expected: the day before surgery has passed
    outlook = registration_outlook(patient, app.extensions["schedule"], NOW)
    assert {a.timepoint for a in outlook.lost} == {"baseline", "preop"}  # registration says so
    session.commit()
    move_surgery(app, session, patient, date(2026, 4, 10), now=NOW)
    assert baseline.status == "open" and baseline.token_hash is not None
    assert (baseline.window_opens, baseline.window_closes) == (date(2026, 3, 16), date(2026, 3, 30))


def test_a_started_baseline_cut_by_a_surgery_date_closes_as_partial_and_is_scored(
    app, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site, inclusion_date=date(2026, 3, 9), at=NOW)
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    baseline = _by_key(patient)["baseline"]
    assert (baseline.status, baseline.window_closes) == ("open", date(2026, 3, 23))
    c30 = app.extensions["instruments"].get("qlq-c30")
    save_answers(
        session,
        now=NOW,
        assessment=baseline,
        instrument=c30,
        language="sv",
        answers={1: 2, 2: 2, 3: 1, 4: 1, 5: 1},
    )
    session.commit()
    # Surgery booked for the day after tomorrow: the baseline ends tomorrow, answers kept.
    move_surgery(app, session, patient, date(2026, 3, 18), now=NOW, reason="")
    assert baseline.status == "in_progress" and baseline.window_closes == date(2026, 3, 17)
    later = datetime(2026, 3, 17, 23, 30, tzinfo=UTC)  # 18 March in Stockholm: bound passed
    changes = update_windows(session, now=later, vault=app.extensions["vault"])
    assert changes.partial == [baseline] and baseline.status == "partial"
    score_partial(session, now=later, assessment=baseline, registry=app.extensions["instruments"])
    session.commit()
    pf2 = session.scalar(
        select(Score.value).where(Score.assessment_id == baseline.id, Score.scale == "PF2")
    )
    assert pf2 is not None
