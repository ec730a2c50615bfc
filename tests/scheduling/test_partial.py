"""A time point whose window closes with answers but no final submit is partial, scored by the
EORTC half rule like a completed one; nothing the patient answered is dropped."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import time_machine
from sqlalchemy import select

from pro_service.answering.responses import save_answers
from pro_service.models import Assessment, AuditEvent, Score
from pro_service.scheduler.jobs import job_windows
from pro_service.scheduling.assessments import OPEN_STATES, update_windows

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
AFTER_CLOSING = NOW + timedelta(days=16)  # the baseline window (14 days) has closed


def test_a_half_answered_time_point_closes_as_partial_and_is_scored(
    app, session, make_site, make_patient
):
    site = make_site()
    answered = make_patient(site, inclusion_date=date(2026, 3, 16))
    silent = make_patient(site, inclusion_date=date(2026, 3, 16))
    session.commit()
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    baseline = next(a for a in answered.assessments if a.timepoint == "baseline")
    c30 = app.extensions["instruments"].get("qlq-c30")
    # Physical functioning (items 1-5) in full, and one of the two global health items.
    save_answers(
        session,
        now=NOW,
        assessment=baseline,
        instrument=c30,
        language="sv",
        answers={1: 1, 2: 2, 3: 1, 4: 1, 5: 1, 29: 5},
    )
    session.commit()
    baseline_id = baseline.id
    silent_id = next(a.id for a in silent.assessments if a.timepoint == "baseline")

    with time_machine.travel(AFTER_CLOSING, tick=False):
        summary = job_windows()  # the scheduler's job, in this test's app context
    assert "partial 1" in summary

    session.expire_all()
    assert session.get(Assessment, baseline_id).status == "partial"
    assert session.get(Assessment, silent_id).status == "expired"
    scores = {
        s.scale: s for s in session.scalars(select(Score).where(Score.assessment_id == baseline_id))
    }
    assert scores["PF2"].value is not None and scores["PF2"].items_answered == 5
    # QL2 has one of its two items: the half rule gives it a score from that one item.
    assert scores["QL2"].value is not None and scores["QL2"].items_answered == 1
    # Fatigue has no answered item: no score.
    assert scores["FA"].value is None
    (event,) = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "assessment.partial")
    ).all()
    assert event.object_id == str(baseline_id) and event.actor_type == "system"
    # The link is closed: no reminder, and no answer is accepted after the window.
    closed = session.get(Assessment, baseline_id)
    assert closed.token_encrypted is None and closed.next_reminder_on is None
    assert closed.status not in OPEN_STATES
