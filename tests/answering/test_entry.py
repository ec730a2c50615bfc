"""A nurse enters the answers of a paper form or a telephone interview: every item answered or
marked blank, scored exactly like an electronic time point, audited without the answers; late
paper forms within the schedule's grace; refusals that name the problem and write nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from pro_service.answering.entry import EntryError, enter_answers, entry_rules
from pro_service.answering.responses import complete_assessment, save_answers
from pro_service.audit import Actor
from pro_service.compliance import compliance_report
from pro_service.instruments import score_instrument
from pro_service.models import (
    Assessment,
    AuditEvent,
    MessageStatus,
    OutboxMessage,
    Response,
    Score,
)
from pro_service.scheduling.assessments import update_windows

NOW = datetime(2026, 3, 17, 10, 0, tzinfo=UTC)  # the baseline window (16-30 March) is open
NURSE = Actor.staff(7)


def _every_item(app, assessment, *, blank=(), code_of=None):  # type: ignore[no-untyped-def]
    """An answer for every item of the time point: its lowest code, or ``code_of(item)``;
    None (left blank) for the items in ``blank``."""
    answers = {}
    for ref in assessment.instruments:
        instrument = app.extensions["instruments"].get(*ref.split(":"))
        for number, item in instrument.items.items():
            code = code_of(item) if code_of else item.codes[0]
            answers[number] = None if number in blank else code
    return answers


def _baseline(app, session, make_site, make_patient):  # type: ignore[no-untyped-def]
    site = make_site()
    patient = make_patient(site, inclusion_date=date(2026, 3, 16), surgery_date=date(2026, 7, 1))
    session.commit()
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    session.commit()
    return next(a for a in patient.assessments if a.timepoint == "baseline")


def _enter(app, session, assessment, answers, *, now=NOW, **fields):  # type: ignore[no-untyped-def]
    arguments = {
        "mode": "paper",
        "language": "sv",
        "answered_on": now.date(),
        "correction_reason": None,
    } | fields
    enter_answers(
        session,
        now=now,
        actor=NURSE,
        assessment=assessment,
        schedule=app.extensions["schedule"],
        registry=app.extensions["instruments"],
        answers=answers,
        **arguments,
    )


def test_a_paper_form_is_stored_completed_and_scored_like_an_electronic_one(
    app, session, make_site, make_patient
):
    baseline = _baseline(app, session, make_site, make_patient)
    pending = OutboxMessage(
        patient_id=baseline.patient_id,
        assessment_id=baseline.id,
        kind="reminder",
        language="sv",
        scheduled_for=NOW + timedelta(days=3),
        status=MessageStatus.PENDING.value,
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(pending)
    session.commit()
    answers = _every_item(app, baseline, blank={7, 29}, code_of=lambda item: item.codes[1])
    _enter(app, session, baseline, answers, mode="telephone", language="fi")
    session.commit()

    session.expire_all()
    done = session.get(Assessment, baseline.id)
    assert (done.status, done.mode, done.entered_by, done.language) == (
        "completed",
        "telephone",
        "staff:7",
        "fi",
    )
    assert done.token_encrypted is None and done.next_reminder_on is None
    stored = dict(
        session.execute(
            select(Response.item_number, Response.code).where(Response.assessment_id == done.id)
        ).all()
    )
    assert stored == {n: c for n, c in answers.items() if c is not None}  # blanks: no row
    # Scored exactly as the scoring engine scores the same answers.
    scores = {
        s.scale: s.value
        for s in session.scalars(select(Score).where(Score.assessment_id == done.id))
    }
    expected = {}
    for ref in done.instruments:
        instrument = app.extensions["instruments"].get(*ref.split(":"))
        expected |= {k: v.value for k, v in score_instrument(instrument, answers).items()}
    assert scores == expected and scores["QL2"] is not None  # QL2 from one of its two items
    # No reminder after the entry.
    assert session.get(OutboxMessage, pending.id).status == MessageStatus.CANCELLED.value
    (event,) = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "assessment.entered")
    ).all()
    assert event.actor_id == "7" and event.after["mode"] == "telephone"
    assert event.after["blank_items"] == [7, 29]
    assert "answers" not in str(event.after) and "'code'" not in str(event.after)


def test_an_item_neither_answered_nor_marked_blank_is_refused_and_nothing_is_written(
    app, session, make_site, make_patient
):
    baseline = _baseline(app, session, make_site, make_patient)
    answers = _every_item(app, baseline)
    del answers[12]
    with pytest.raises(EntryError) as refused:
        _enter(app, session, baseline, answers)
    assert refused.value.field == "q12"
    assert str(refused.value) == "Question 12: choose an answer, or mark it as left blank."
    session.rollback()
    session.expire_all()
    assert session.get(Assessment, baseline.id).status == "open"
    assert session.scalar(select(Response.id).where(Response.assessment_id == baseline.id)) is None


def test_an_answer_outside_the_items_options_is_refused_naming_it(
    app, session, make_site, make_patient
):
    baseline = _baseline(app, session, make_site, make_patient)
    answers = _every_item(app, baseline)
    answers[29] = 8  # global health is 1-7
    with pytest.raises(EntryError) as refused:
        _enter(app, session, baseline, answers)
    assert refused.value.field == "q29"
    assert "8 is not one of its answers (1, 2, 3, 4, 5, 6, 7)" in str(refused.value)
    session.rollback()
    assert session.get(Assessment, baseline.id).status == "open"


def test_a_time_point_not_open_yet_and_one_the_patient_completed_are_refused(
    app, session, make_site, make_patient
):
    baseline = _baseline(app, session, make_site, make_patient)
    later = next(a for a in baseline.patient.assessments if a.timepoint != "baseline")
    with pytest.raises(EntryError, match="is not open yet"):
        _enter(app, session, later, _every_item(app, later))
    session.rollback()

    save_answers(
        session,
        now=NOW,
        assessment=baseline,
        instrument=app.extensions["instruments"].get("qlq-c30"),
        language="sv",
        answers={1: 1},
    )
    complete_assessment(
        session,
        now=NOW,
        assessment=baseline,
        registry=app.extensions["instruments"],
        language="sv",
        actor=Actor("patient"),
    )
    session.commit()
    assert session.get(Assessment, baseline.id).mode == "electronic"
    with pytest.raises(EntryError, match="completed by the patient on the phone"):
        _enter(app, session, baseline, _every_item(app, baseline))
    session.rollback()
    assert (
        session.scalar(
            select(Response.code).where(
                Response.assessment_id == baseline.id, Response.item_number == 2
            )
        )
        is None
    )  # the patient's answers are as they were


def test_a_late_paper_form_within_the_grace_completes_a_missed_time_point(
    app, session, make_site, make_patient
):
    baseline = _baseline(app, session, make_site, make_patient)
    closed_on = baseline.window_closes  # 30 March
    after = datetime(2026, 4, 5, 9, 0, tzinfo=UTC)
    update_windows(session, now=after, vault=app.extensions["vault"])
    session.commit()
    session.refresh(baseline)
    assert baseline.status == "expired"
    baseline.missing_reason = "no-response"
    session.commit()

    # The date on the form must lie in the window or the grace, and not after today.
    with pytest.raises(EntryError) as refused:
        _enter(
            app,
            session,
            baseline,
            _every_item(app, baseline),
            now=after,
            answered_on=date(2026, 3, 10),
        )
    assert refused.value.field == "answered_on"
    session.rollback()

    _enter(
        app, session, baseline, _every_item(app, baseline), now=after, answered_on=date(2026, 3, 28)
    )
    session.commit()
    session.expire_all()
    done = session.get(Assessment, baseline.id)
    assert done.status == "completed" and done.mode == "paper"
    assert done.missing_reason is None  # no longer missing
    # Completed on the day written on the form (noon, site time), not the day it arrived.
    assert done.completed_at == datetime(2026, 3, 28, 11, 0, tzinfo=UTC)  # 12:00 CET
    assert done.window_closes == closed_on
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "assessment.entered")
    ).one()
    assert event.before == {"status": "expired", "missing_reason": "no-response"}
    # The compliance report counts it as received, no longer as missed.
    report = compliance_report(
        session,
        schedule=app.extensions["schedule"],
        reasons=app.extensions["missing_reasons"].codes,
        site_ids=None,
    )
    row = report.rows[("SE-LUN", "baseline")]
    assert (row.complete, row.missed, row.completion_rate) == (1, 0, 1.0)


def test_past_the_grace_a_missed_time_point_takes_no_entry(app, session, make_site, make_patient):
    baseline = _baseline(app, session, make_site, make_patient)
    grace = app.extensions["schedule"].timepoint("baseline").late_entry_days
    assert grace == 28  # scanpan.yaml
    too_late = datetime.combine(
        baseline.window_closes + timedelta(days=grace + 1), datetime.min.time(), tzinfo=UTC
    ) + timedelta(hours=10)
    update_windows(session, now=too_late, vault=app.extensions["vault"])
    session.commit()
    rules = entry_rules(baseline, now=too_late, schedule=app.extensions["schedule"])
    assert not rules.allowed
    with pytest.raises(EntryError, match="answers could be entered until 2026-04-27"):
        _enter(
            app,
            session,
            baseline,
            _every_item(app, baseline),
            now=too_late,
            answered_on=date(2026, 3, 20),
        )
    session.rollback()
    assert session.get(Assessment, baseline.id).status == "expired"


def test_a_correction_of_an_entry_needs_a_reason_and_audits_the_changed_items(
    app, session, make_site, make_patient
):
    baseline = _baseline(app, session, make_site, make_patient)
    answers = _every_item(app, baseline)
    _enter(app, session, baseline, answers)
    session.commit()
    before = session.scalar(
        select(Score.value).where(Score.assessment_id == baseline.id, Score.scale == "QL2")
    )

    corrected = {**answers, 29: 7, 30: 7}
    with pytest.raises(EntryError, match="needs a reason for the correction"):
        _enter(app, session, baseline, corrected)
    session.rollback()

    _enter(app, session, baseline, corrected, correction_reason="Item 29 and 30 misread")
    session.commit()
    session.expire_all()
    after = session.scalar(
        select(Score.value).where(Score.assessment_id == baseline.id, Score.scale == "QL2")
    )
    assert (before, after) == (0.0, 100.0)  # rescored from the corrected answers
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "assessment.entry_corrected")
    ).one()
    assert event.after["changed_items"] == [29, 30]
    assert event.reason == "Item 29 and 30 misread"


def test_a_cancelled_time_point_takes_no_entry(app, session, make_site, make_patient):
    baseline = _baseline(app, session, make_site, make_patient)
    baseline.status = "cancelled"
    session.commit()
    with pytest.raises(EntryError, match="not expected from this patient"):
        _enter(app, session, baseline, _every_item(app, baseline))
