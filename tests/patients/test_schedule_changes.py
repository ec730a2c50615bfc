from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from pro_service.answering.questionnaire import Link, accepts_answers
from pro_service.answering.responses import complete_assessment, save_answers, stored_answers
from pro_service.audit import Actor
from pro_service.models import Assessment, AuditEvent, MessageStatus, OutboxMessage, Score
from pro_service.patients.schedule_changes import (
    ScheduleChangeError,
    change_surgery_date,
    correct_status,
)
from pro_service.scheduling.assessments import update_windows

from builders import build_patient, build_site, leave

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # Monday 16 March 2026, 11:00 in Stockholm


@pytest.fixture
def ctx(app, session):
    site = build_site(session, now=NOW, code="SE-LUN", name="Lund")
    patient = build_patient(
        app,
        session,
        now=NOW,
        actor=Actor.staff(1),
        site=site,
        study_id="LUN-001",
        phone="070-174 06 20",
        language="sv",
        inclusion_date=date(2026, 3, 2),
        surgery_date=date(2026, 4, 20),
    )
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    session.commit()
    return app, patient


def _change(ctx, session, new_date, reason="moved by the surgeons", now=NOW):
    app, patient = ctx
    changed = change_surgery_date(
        session,
        now=now,
        actor=Actor.staff(7),
        schedule=app.extensions["schedule"],
        vault=app.extensions["vault"],
        patient=patient,
        new_date=new_date,
        reason=reason,
    )
    session.commit()
    return changed


def _leave(ctx, session, status, *, reason):  # type: ignore[no-untyped-def]
    """The nurse records that the patient left the study (``status``) on ``NOW``; committed."""
    app, patient = ctx
    cancelled = leave(
        app,
        session,
        patient,
        status,
        now=NOW,
        reason=reason,
        actor=Actor.staff(7),
    )
    session.commit()
    return cancelled


def _correct(ctx, session, reason, *, now):  # type: ignore[no-untyped-def]
    """The nurse corrects a status recorded by mistake (not committed: a refusal rolls back)."""
    app, patient = ctx
    return correct_status(
        session,
        now=now,
        actor=Actor.staff(7),
        schedule=app.extensions["schedule"],
        vault=app.extensions["vault"],
        patient=patient,
        reason=reason,
    )


def _by_key(patient):
    return {a.timepoint: a for a in patient.assessments}


def _pending(session, assessment):
    message = OutboxMessage(
        patient_id=assessment.patient_id,
        assessment_id=assessment.id,
        kind="reminder",
        language="sv",
        scheduled_for=NOW,
        status=MessageStatus.PENDING.value,
        attempts=0,
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(message)
    session.commit()
    return message


def _answer_in_full(app, session, assessment):  # type: ignore[no-untyped-def]
    """The patient answers every QLQ-C30 item on ``NOW`` and sends the questionnaire."""
    c30 = app.extensions["instruments"].get("qlq-c30")
    save_answers(
        session,
        now=NOW,
        assessment=assessment,
        instrument=c30,
        language="sv",
        answers={n: 1 for n in c30.items},
    )
    complete_assessment(
        session,
        now=NOW,
        assessment=assessment,
        registry=app.extensions["instruments"],
        language="sv",
        actor=Actor("patient", str(assessment.patient_id)),
    )
    session.commit()


def test_moving_surgery_later_recomputes_every_surgery_time_point(ctx, session):
    _app, patient = ctx
    _change(ctx, session, date(2026, 5, 31))
    tps = _by_key(patient)
    assert tps["preop"].due_date == date(2026, 5, 24)
    assert tps["m3"].due_date == date(2026, 8, 31)
    assert tps["m24"].due_date == date(2028, 5, 31)
    assert tps["baseline"].due_date == date(2026, 3, 2)  # inclusion-anchored: unchanged


def test_moving_surgery_earlier_opens_a_window_that_now_includes_today(ctx, session):
    _app, patient = ctx
    assert _by_key(patient)["preop"].status == "scheduled"
    _change(ctx, session, date(2026, 3, 25))
    preop = _by_key(patient)["preop"]
    assert preop.status == "open"
    assert preop.token_hash is not None


def test_a_started_time_point_follows_the_new_surgery_date_and_keeps_its_answers(ctx, session):
    app, patient = ctx
    _change(ctx, session, date(2026, 3, 25))  # preop open now
    preop = _by_key(patient)["preop"]
    c30 = app.extensions["instruments"].get("qlq-c30")
    save_answers(session, now=NOW, assessment=preop, instrument=c30, language="sv", answers={1: 2})
    session.commit()
    link = preop.token_hash
    _change(ctx, session, date(2026, 6, 1))
    assert preop.status == "in_progress"
    assert (preop.due_date, preop.window_closes) == (date(2026, 5, 25), date(2026, 5, 31))
    assert preop.token_hash == link  # the patient's link goes on, with the answer given
    assert stored_answers(session, preop.id) == {1: 2}


def test_surgery_moved_before_a_started_preop_closes_it_as_partial_not_after_surgery(ctx, session):
    """The probe's case: surgery moved earlier while "before surgery" was half answered. The
    form must not be finished (or reminded) after the new surgery date: the link stops taking
    answers at once and the next scheduler pass closes it as partial, scored."""
    app, patient = ctx
    _change(ctx, session, date(2026, 3, 25))  # preop open: 4 to 24 March
    preop = _by_key(patient)["preop"]
    preop.invitation_queued_at = NOW
    c30 = app.extensions["instruments"].get("qlq-c30")
    answers = {1: 1, 2: 2, 3: 1, 4: 1, 5: 1}
    save_answers(session, now=NOW, assessment=preop, instrument=c30, language="sv", answers=answers)
    session.commit()
    reminder = _pending(session, preop)

    _change(ctx, session, date(2026, 3, 16))  # operated today, after all
    assert preop.window_closes == date(2026, 3, 15)  # the day before the new surgery date
    assert preop.next_reminder_on is None
    session.refresh(reminder)
    assert reminder.status == MessageStatus.CANCELLED.value
    row = session.execute(
        select(Assessment.status, Assessment.window_closes).where(Assessment.id == preop.id)
    ).one()
    fake = Link(
        assessment_id=preop.id,
        status=row.status,
        window_opens=preop.window_opens,
        window_closes=row.window_closes,
        completed_at=None,
        instruments=tuple(preop.instruments),
        patient_id=patient.id,
        site_id=patient.site_id,
        patient_status="active",
        patient_language="sv",
        opted_out=False,
        time_zone="Europe/Stockholm",
    )
    assert not accepts_answers(fake, NOW)  # the link takes no more answers

    changes = update_windows(session, now=NOW, vault=app.extensions["vault"])
    assert [a.id for a in changes.partial] == [preop.id]
    session.commit()
    assert preop.status == "partial"
    assert stored_answers(session, preop.id) == answers  # nothing dropped


def test_a_started_time_point_whose_window_shrinks_is_reminded_inside_the_new_window(ctx, session):
    app, patient = ctx
    _change(ctx, session, date(2026, 4, 1))  # preop: 11 to 31 March
    preop = _by_key(patient)["preop"]
    preop.invitation_queued_at = NOW
    c30 = app.extensions["instruments"].get("qlq-c30")
    save_answers(session, now=NOW, assessment=preop, instrument=c30, language="sv", answers={1: 2})
    session.commit()
    sent = _pending(session, preop)
    sent.kind, sent.status = "invitation", MessageStatus.SENT.value
    session.commit()
    _change(ctx, session, date(2026, 3, 22))  # preop now 1 to 21 March
    assert preop.status == "in_progress" and preop.window_closes == date(2026, 3, 21)
    # The last-chance reminder of the new window (3 days before it closes), not the old one's.
    assert preop.next_reminder_on == date(2026, 3, 18)


def test_a_completed_time_point_is_never_reissued(ctx, session):
    app, patient = ctx
    _change(ctx, session, date(2026, 3, 25))
    preop = _by_key(patient)["preop"]
    _answer_in_full(app, session, preop)
    for new_date in (date(2026, 7, 1), None, date(2026, 3, 20)):
        _change(ctx, session, new_date)
        assert preop.status == "completed"
        assert preop.due_date == date(2026, 3, 18)


def test_removing_the_surgery_date_cancels_unstarted_surgery_time_points(ctx, session):
    _app, patient = ctx
    _change(ctx, session, None)
    tps = _by_key(patient)
    assert {tps[k].status for k in ("preop", "m3", "m6", "m9", "m12", "m18", "m24")} == {
        "cancelled"
    }
    assert tps["baseline"].status == "open"
    # Setting it again brings them back, recomputed.
    _change(ctx, session, date(2026, 9, 1))
    assert _by_key(patient)["m3"].status == "scheduled"
    assert _by_key(patient)["m3"].due_date == date(2026, 12, 1)


def test_setting_a_first_surgery_date_creates_the_surgery_time_points(app, session):
    site = build_site(session, now=NOW, code="FI-HEL")
    patient = build_patient(
        app,
        session,
        now=NOW,
        actor=Actor.staff(1),
        site=site,
        study_id="HEL-001",
        phone="+358401234501",
        language="fi",
        inclusion_date=date(2026, 3, 2),
    )
    session.commit()
    change_surgery_date(
        session,
        now=NOW,
        actor=Actor.staff(1),
        schedule=app.extensions["schedule"],
        vault=app.extensions["vault"],
        patient=patient,
        new_date=date(2026, 7, 6),
        reason="surgery booked",
    )
    session.commit()
    assert [a.timepoint for a in patient.assessments] == [
        "baseline",
        "preop",
        "m3",
        "m6",
        "m9",
        "m12",
        "m18",
        "m24",
    ]


def test_pending_messages_of_moved_time_points_are_cancelled(ctx, session):
    _app, patient = ctx
    m3_message = _pending(session, _by_key(patient)["m3"])
    baseline_message = _pending(session, _by_key(patient)["baseline"])
    _change(ctx, session, date(2026, 5, 31))
    session.refresh(m3_message)
    session.refresh(baseline_message)
    assert m3_message.status == "cancelled"
    assert baseline_message.status == "pending"


def test_the_change_is_audited_with_before_after_and_reason(ctx, session):
    _change(ctx, session, date(2026, 5, 31), reason="theatre rebooked")
    event = session.scalar(
        select(AuditEvent).where(AuditEvent.action == "patient.surgery_date_changed")
    )
    assert event.reason == "theatre rebooked"
    assert event.actor_id == "7"
    assert event.before["surgery_date"] == "2026-04-20"
    assert event.after["surgery_date"] == "2026-05-31"
    assert event.before["m3"]["due_date"] == "2026-07-20"
    assert event.after["m3"]["due_date"] == "2026-08-31"


@pytest.mark.parametrize(
    ("new_date", "reason", "field"),
    [
        (date(2026, 3, 1), "x", "surgery_date"),  # before inclusion
        (date(2056, 3, 1), "x", "surgery_date"),  # decades away
        (date(2026, 5, 1), "  ", "reason"),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(ctx, session, new_date, reason, field):
    _app, patient = ctx
    with pytest.raises(ScheduleChangeError) as excinfo:
        _change(ctx, session, new_date, reason=reason)
    assert excinfo.value.field == field
    session.rollback()
    assert patient.surgery_date == date(2026, 4, 20)


@pytest.mark.parametrize("status", ["withdrawn", "deceased", "not_operated"])
def test_leaving_the_study_cancels_what_is_left(ctx, session, status):
    app, patient = ctx
    message = _pending(session, _by_key(patient)["baseline"])
    _leave(ctx, session, status, reason="patient's wish")
    main = {tp.key for tp in app.extensions["schedule"].main_timepoints}
    assert {a.status for a in patient.assessments if a.timepoint in main} == {"cancelled"}
    # Not operated: the follow-up track begins (counted from the decision, recorded today).
    follow_up = {a.timepoint: a.status for a in patient.assessments if a.timepoint not in main}
    if status == "not_operated":
        assert follow_up == dict.fromkeys(("nonop_m3", "nonop_m6", "nonop_m12"), "scheduled")
    else:
        assert follow_up == {}
    session.refresh(message)
    assert message.status == "cancelled"
    assert patient.status == status


def test_a_new_inclusion_date_moves_the_inclusion_time_points_like_a_surgery_change(ctx, session):
    app, patient = ctx
    from pro_service.patients.registry import PatientDataError, update_patient

    baseline = _by_key(patient)["baseline"]
    assert baseline.status == "open"
    message = _pending(session, baseline)
    m3_due = _by_key(patient)["m3"].due_date
    with pytest.raises(PatientDataError) as excinfo:
        update_patient(
            session,
            now=NOW,
            actor=Actor.staff(7),
            vault=app.extensions["vault"],
            schedule=app.extensions["schedule"],
            patient=patient,
            inclusion_date=date(2026, 3, 30),
            reason=" ",
        )
    assert excinfo.value.field == "reason"
    session.rollback()
    update = update_patient(
        session,
        now=NOW,
        actor=Actor.staff(7),
        vault=app.extensions["vault"],
        schedule=app.extensions["schedule"],
        patient=patient,
        inclusion_date=date(2026, 3, 30),
        reason="wrong inclusion date",
    )
    session.commit()
    assert update.fields == ["inclusion_date"]
    assert [a.timepoint for a in update.rescheduled.changed] == ["baseline"]
    assert (baseline.status, baseline.due_date) == ("scheduled", date(2026, 3, 30))
    assert baseline.token_encrypted is None  # the old link no longer works
    assert _by_key(patient)["m3"].due_date == m3_due
    session.refresh(message)
    assert message.status == "cancelled"
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.updated"))
    assert event.before["baseline"] == {"status": "open", "due_date": "2026-03-02"}
    assert event.after["baseline"] == {"status": "scheduled", "due_date": "2026-03-30"}
    assert event.reason == "wrong inclusion date"


@pytest.mark.parametrize("status", ["withdrawn", "deceased", "not_operated"])
def test_leaving_keeps_a_started_time_point_as_partial_and_scores_it(ctx, session, status):
    """A patient who dies (or leaves) half way through a questionnaire: what they answered is
    kept, closed as partial and scored by the half rule; nothing after is expected."""
    app, patient = ctx
    baseline = _by_key(patient)["baseline"]  # open on 16 March
    c30 = app.extensions["instruments"].get("qlq-c30")
    answers = {1: 2, 2: 2, 3: 1, 4: 1, 5: 1}
    save_answers(
        session, now=NOW, assessment=baseline, instrument=c30, language="sv", answers=answers
    )
    session.commit()
    cancelled = _leave(
        ctx, session, status, reason="died at home" if status == "deceased" else "patient's wish"
    )
    assert baseline.status == "partial" and baseline not in cancelled
    assert stored_answers(session, baseline.id) == answers
    pf2 = session.scalar(
        select(Score.value).where(Score.assessment_id == baseline.id, Score.scale == "PF2")
    )
    assert pf2 is not None
    main = {tp.key for tp in app.extensions["schedule"].main_timepoints}
    assert {a.status for a in patient.assessments if a.timepoint in main - {"baseline"}} == {
        "cancelled"
    }
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == f"patient.{status}")
    ).one()
    assert event.after["partial_timepoints"] == ["baseline"]


def test_a_status_recorded_by_mistake_is_corrected_and_the_schedule_rebuilt(ctx, session):
    """ "Not operated" entered for the wrong patient: active again with a reason; the baseline,
    open when it was cancelled, opens again with a new link; later time points are scheduled;
    the follow-up track it began is no longer expected and its decision date goes; audited
    before/after."""
    app, patient = ctx
    _leave(ctx, session, "not_operated", reason="progression")
    track = {"nonop_m3", "nonop_m6", "nonop_m12"}
    assert {a.status for a in patient.assessments if a.timepoint not in track} == {"cancelled"}
    assert patient.recorded_anchors[0].anchor == "no_surgery_decision"
    with pytest.raises(ScheduleChangeError) as refused:
        _correct(ctx, session, "  ", now=NOW)
    assert refused.value.field == "reason"
    session.rollback()

    later = datetime(2026, 3, 16, 14, 0, tzinfo=UTC)  # the baseline window closes today
    rebuilt = _correct(ctx, session, "entered for the wrong patient", now=later)
    session.commit()
    assert patient.status == "active"
    states = {a.timepoint: a.status for a in patient.assessments}
    assert states["baseline"] == "open" and _by_key(patient)["baseline"].token_hash is not None
    assert states["preop"] == "scheduled"  # opens 30 March
    assert {states[key] for key in track} == {"cancelled"}
    assert patient.recorded_anchors == [] and patient.status_date is None
    assert {a.timepoint for a in rebuilt} == set(states)
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.status_corrected")
    ).one()
    assert event.before == {"status": "not_operated", "status_date": "2026-03-16"}
    assert event.after["status"] == "active" and event.reason == "entered for the wrong patient"
    with pytest.raises(ScheduleChangeError, match="already"):
        _correct(ctx, session, "again", now=later)


def test_a_corrected_status_leaves_passed_windows_missed(ctx, session):
    app, patient = ctx
    _leave(ctx, session, "withdrawn", reason="patient's wish")
    much_later = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)  # baseline and preop windows passed
    _correct(ctx, session, "withdrawal was recorded for the wrong study ID", now=much_later)
    session.commit()
    states = {a.timepoint: a.status for a in patient.assessments}
    assert states["baseline"] == "expired" and states["preop"] == "expired"
    assert states["m3"] == "scheduled"


def test_a_move_that_puts_a_completed_form_after_surgery_flags_it_for_review(ctx, session):
    """ "Before surgery" answered on 16 March; surgery then moved to 12 March. The answers stay
    (never re-issued) and the time point is flagged; moving the date back clears the flag."""
    app, patient = ctx
    _change(ctx, session, date(2026, 3, 25))  # preop open: 4 to 24 March
    preop = _by_key(patient)["preop"]
    _answer_in_full(app, session, preop)
    _change(ctx, session, date(2026, 3, 12), now=datetime(2026, 3, 17, 9, 0, tzinfo=UTC))
    assert (preop.status, preop.review_flag) == ("completed", "outside_window")
    event = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "patient.surgery_date_changed")
        .order_by(AuditEvent.id.desc())
    ).first()
    assert event.after["preop"]["review_flag"] == "outside_window"
    assert event.after["preop"]["answered_on"] == "2026-03-16"

    _change(ctx, session, date(2026, 3, 25), now=datetime(2026, 3, 17, 9, 5, tzinfo=UTC))
    assert preop.review_flag is None
