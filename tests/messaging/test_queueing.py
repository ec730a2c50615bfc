"""Invitations when a window opens, reminders on the schedule's days, never after completion."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from pro_service.answering.responses import complete_assessment, save_answers
from pro_service.audit import Actor
from pro_service.messaging.outbox import queue_invitations, queue_reminders
from pro_service.models import MessageStatus, OutboxMessage
from pro_service.patients.schedule_changes import change_surgery_date
from pro_service.scheduling.assessments import update_windows

from builders import leave

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # Monday, 11:00 in Stockholm


def _messages(session, patient=None):
    session.expire_all()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if patient is not None:
        query = query.where(OutboxMessage.patient_id == patient.id)
    return list(session.scalars(query))


def _pass(app, session, now):
    """What the scheduler does before dispatch: windows, invitations, reminders."""
    update_windows(session, now=now, vault=app.extensions["vault"])
    session.commit()
    queue_invitations(session, now=now, schedule=app.extensions["schedule"])
    queue_reminders(session, now=now, schedule=app.extensions["schedule"])
    session.commit()


def _by_key(patient):
    return {a.timepoint: a for a in patient.assessments}


def test_an_opening_window_queues_exactly_one_invitation_in_the_patients_language(
    app, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site, language="fi")
    session.commit()
    _pass(app, session, NOW)
    _pass(app, session, NOW + timedelta(minutes=1))
    messages = _messages(session, patient)
    assert [(m.kind, m.language, m.status) for m in messages] == [("invitation", "fi", "pending")]
    assert messages[0].scheduled_for == NOW  # 11:00 in Stockholm: inside sending hours


def test_an_invitation_queued_at_night_is_scheduled_for_nine_the_next_morning(
    app, session, make_site, make_patient
):
    site = make_site(code="FI-HEL", time_zone="Europe/Helsinki", country="FI", language="fi")
    patient = make_patient(site, phone="+358 40 123 4501", language="fi")
    session.commit()
    night = datetime(2026, 3, 16, 21, 30, tzinfo=UTC)  # 23:30 in Helsinki
    _pass(app, session, night)
    (message,) = _messages(session, patient)
    assert message.scheduled_for == datetime(2026, 3, 17, 7, 0, tzinfo=UTC)  # 09:00 EET


def test_reminders_go_on_the_schedules_days_and_only_once_each(
    app, session, make_site, make_patient
):
    site = make_site()
    # Baseline opens 16 March and closes 30 March: reminders on days 3 and 7, and a last
    # chance 3 days before it closes (27 March), so the window's last days are not silent.
    patient = make_patient(site)
    session.commit()
    for day in range(0, 16):
        for hour in (6, 10, 17):
            _pass(app, session, NOW.replace(hour=hour) + timedelta(days=day))
    reminders = [m for m in _messages(session, patient) if m.kind == "reminder"]
    days = [m.created_at.date() for m in reminders]
    assert days == [date(2026, 3, 19), date(2026, 3, 23), date(2026, 3, 27)]


def test_no_reminder_is_queued_after_completion_and_pending_ones_are_cancelled(
    app, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site)
    session.commit()
    _pass(app, session, NOW)
    reminder_day = NOW + timedelta(days=3)
    _pass(app, session, reminder_day.replace(hour=4))  # before 09:00 local: waits for 09:00
    pending = [m for m in _messages(session, patient) if m.kind == "reminder"]
    assert [m.status for m in pending] == ["pending"]

    baseline = _by_key(patient)["baseline"]
    registry = app.extensions["instruments"]
    for ref in baseline.instruments:
        instrument = registry.get(*ref.split(":"))
        answers = {n: min(item.codes) for n, item in instrument.items.items()}
        save_answers(
            session,
            now=reminder_day.replace(hour=5),
            assessment=baseline,
            instrument=instrument,
            language="sv",
            answers=answers,
        )
    complete_assessment(
        session,
        now=reminder_day.replace(hour=5),
        assessment=baseline,
        registry=registry,
        language="sv",
        actor=Actor("patient", str(patient.id)),
    )
    session.commit()
    for day in range(3, 15):
        _pass(app, session, NOW + timedelta(days=day))
    reminders = [m for m in _messages(session, patient) if m.kind == "reminder"]
    assert [m.status for m in reminders] == ["cancelled"]
    assert reminders[0].error_message == "time point completed"


def test_no_reminder_after_the_window_closes(app, session, make_site, make_patient):
    site = make_site()
    patient = make_patient(site)
    session.commit()
    for day in range(0, 30):
        _pass(app, session, NOW + timedelta(days=day))
    baseline = _by_key(patient)["baseline"]
    assert baseline.status == "expired"
    reminders = [m for m in _messages(session, patient) if m.kind == "reminder"]
    assert all(m.created_at.date() <= baseline.window_closes for m in reminders)
    assert len(reminders) == 3


def test_opted_out_and_withdrawn_patients_get_no_messages(app, session, make_site, make_patient):
    site = make_site()
    opted_out = make_patient(site)
    opted_out.opted_out = True
    withdrawn = make_patient(site, phone="070-174 06 06")
    session.commit()
    leave(
        app,
        session,
        withdrawn,
        "withdrawn",
        now=NOW,
        reason="patient's wish",
        actor=Actor.staff(1),
    )
    session.commit()
    for day in range(0, 10):
        _pass(app, session, NOW + timedelta(days=day))
    assert _messages(session) == []


def test_a_patient_without_a_number_still_gets_a_queued_invitation_so_it_fails_visibly(
    app, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site, phone=None)
    session.commit()
    _pass(app, session, NOW)
    assert [m.kind for m in _messages(session, patient)] == ["invitation"]


def test_withdrawal_cancels_the_pending_invitation(app, session, make_site, make_patient):
    site = make_site()
    patient = make_patient(site)
    session.commit()
    _pass(app, session, NOW.replace(hour=22))  # queued for tomorrow 09:00
    leave(
        app,
        session,
        patient,
        "deceased",
        now=NOW,
        reason="died",
        actor=Actor.staff(1),
    )
    session.commit()
    (message,) = _messages(session, patient)
    assert message.status == MessageStatus.CANCELLED.value


def _move_surgery(app, session, patient, new_date, now):
    change_surgery_date(
        session,
        now=now,
        actor=Actor.staff(1),
        schedule=app.extensions["schedule"],
        vault=app.extensions["vault"],
        patient=patient,
        new_date=new_date,
        reason="rescheduled by the surgeons",
    )
    session.commit()


def test_surgery_moved_earlier_opens_preop_and_its_invitation_follows(
    app, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site, inclusion_date=date(2026, 3, 2), surgery_date=date(2026, 5, 20))
    session.commit()
    _pass(app, session, NOW)
    assert [m.kind for m in _messages(session, patient)] == ["invitation"]  # baseline only
    _move_surgery(app, session, patient, date(2026, 3, 25), NOW)  # preop window now open
    _pass(app, session, NOW + timedelta(minutes=5))
    preop = _by_key(patient)["preop"]
    invitations = [m for m in _messages(session, patient) if m.assessment_id == preop.id]
    assert [(m.kind, m.status) for m in invitations] == [("invitation", "pending")]


def test_surgery_moved_later_cancels_the_unsent_invitation_and_sends_none_early(
    app, session, make_site, make_patient
):
    site = make_site()
    # Registered on 20 February: by 16 March the baseline is over and "before surgery" opens
    # alone, with an invitation of its own (test_one_sms_per_patient.py: when both open).
    patient = make_patient(
        site,
        at=datetime(2026, 2, 20, 10, 0, tzinfo=UTC),
        inclusion_date=date(2026, 2, 20),
        surgery_date=date(2026, 3, 25),
    )
    session.commit()
    _pass(app, session, NOW.replace(hour=21))  # preop open; invitation waits for 09:00
    preop = _by_key(patient)["preop"]
    (invitation,) = [m for m in _messages(session, patient) if m.assessment_id == preop.id]
    _move_surgery(app, session, patient, date(2026, 6, 10), NOW.replace(hour=22))
    session.refresh(invitation)
    assert invitation.status == "cancelled"
    assert preop.status == "scheduled"
    for day in range(1, 20):
        _pass(app, session, NOW + timedelta(days=day))
    assert [m.status for m in _messages(session, patient) if m.assessment_id == preop.id] == [
        "cancelled"
    ]
    # When the new window opens (27 May), a new invitation with the new link is queued.
    _pass(app, session, datetime(2026, 5, 27, 10, 0, tzinfo=UTC))
    statuses = [m.status for m in _messages(session, patient) if m.assessment_id == preop.id]
    assert statuses == ["cancelled", "pending"]


def test_surgery_date_removed_cancels_the_pending_surgery_messages(
    app, session, make_site, make_patient
):
    site = make_site()
    # Registered on 20 February: by 16 March the baseline is over and "before surgery" opens
    # alone, with an invitation of its own (test_one_sms_per_patient.py: when both open).
    patient = make_patient(
        site,
        at=datetime(2026, 2, 20, 10, 0, tzinfo=UTC),
        inclusion_date=date(2026, 2, 20),
        surgery_date=date(2026, 3, 25),
    )
    session.commit()
    _pass(app, session, NOW.replace(hour=21))
    _move_surgery(app, session, patient, None, NOW.replace(hour=22))
    by_kind = {
        (m.assessment_id == _by_key(patient)["preop"].id, m.status)
        for m in _messages(session, patient)
    }
    assert (True, "cancelled") in by_kind
    assert (True, "pending") not in by_kind


def test_a_window_still_open_after_a_move_does_not_repeat_an_invitation_already_sent(
    app, session, make_site, make_patient
):
    site = make_site()
    # Registered on 20 February: by 16 March the baseline is over and "before surgery" opens
    # alone, with an invitation of its own (test_one_sms_per_patient.py: when both open).
    patient = make_patient(
        site,
        at=datetime(2026, 2, 20, 10, 0, tzinfo=UTC),
        inclusion_date=date(2026, 2, 20),
        surgery_date=date(2026, 3, 25),
    )
    session.commit()
    _pass(app, session, NOW)
    preop = _by_key(patient)["preop"]
    (invitation,) = [m for m in _messages(session, patient) if m.assessment_id == preop.id]
    invitation.status = MessageStatus.DELIVERED.value  # the patient has the link
    session.commit()
    _move_surgery(app, session, patient, date(2026, 3, 27), NOW + timedelta(hours=1))
    assert preop.status == "open"
    _pass(app, session, NOW + timedelta(hours=2))
    assert [m.kind for m in _messages(session, patient) if m.assessment_id == preop.id] == [
        "invitation"
    ]
