"""Queueing patient SMS: invitations when a window opens, reminders on the schedule's days, resends.

Each message is a row in the outbox (``OutboxMessage``), written in the same transaction as the
decision to send it; the scheduler's dispatch job (``messaging/dispatch.py``) sends it later, inside
the site's sending hours. Nothing here talks to an SMS provider.

Bookkeeping on the assessment keeps every scheduler pass cheap (indexed, no scans of history):
``invitation_queued_at`` (None: the current link has not been announced yet; ``issue_token``
resets it) and ``next_reminder_on`` (the site-local day of the next reminder; None: no more).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import (
    FOLLOWED_STATUSES,
    Assessment,
    MessageStatus,
    OutboxMessage,
    Patient,
    Site,
)
from ..scheduling.assessments import OPEN_STATES, local_today
from ..scheduling.schedule import Schedule

LINK_KINDS = ("invitation", "reminder", "resend")
# Statuses that mean the message reached (or may have reached) the provider.
WENT_OUT = (
    MessageStatus.SENDING.value,
    MessageStatus.SENT.value,
    MessageStatus.DELIVERED.value,
    MessageStatus.UNDELIVERED.value,
    MessageStatus.FAILED.value,
)


# --- sending hours -------------------------------------------------------------------------


def _clock(value: str) -> time:
    if value == "24:00":  # "until midnight"
        return time.max
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def sending_hours(site: Site) -> tuple[time, time]:
    return _clock(site.sending_start or "09:00"), _clock(site.sending_end or "20:00")


def in_sending_hours(site: Site, at: datetime) -> bool:
    start, end = sending_hours(site)
    local = at.astimezone(ZoneInfo(site.time_zone)).time()
    return start <= local < end


def next_sending_time(site: Site, at: datetime) -> datetime:
    """``at`` if it lies inside the site's sending hours, else the next opening (aware UTC).

    Computed on the site's calendar with zoneinfo, so 09:00 stays 09:00 local across the
    daylight-saving changes.
    """
    if in_sending_hours(site, at):
        return at
    zone = ZoneInfo(site.time_zone)
    local = at.astimezone(zone)
    start, _end = sending_hours(site)
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return datetime.combine(day, start, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class SendingWindow:
    """A site's sending hours as seen at one moment: open now, or when they open next."""

    site_code: str
    time_zone: str
    start: time
    end: time
    open_now: bool
    next_opening: datetime  # local time at the site


def sending_windows(session: Session, now: datetime) -> list[SendingWindow]:
    """Every site's sending hours at ``now``, by site code (for operators: when SMS go out)."""
    windows = []
    for site in session.scalars(select(Site).order_by(Site.code)):
        start, end = sending_hours(site)
        windows.append(
            SendingWindow(
                site_code=site.code,
                time_zone=site.time_zone,
                start=start,
                end=end,
                open_now=in_sending_hours(site, now),
                next_opening=next_sending_time(site, now).astimezone(ZoneInfo(site.time_zone)),
            )
        )
    return windows


# --- reminders arithmetic ------------------------------------------------------------------


def reminder_days(assessment: Assessment, schedule: Schedule) -> list[date]:
    """The local days of this time point's reminders, inside its window: counted from its
    opening day, and back from its closing day (a last-chance reminder)."""
    try:
        timepoint = schedule.timepoint(assessment.timepoint)
    except KeyError:
        return []
    days = {assessment.window_opens + timedelta(days=d) for d in timepoint.reminder_days}
    days |= {assessment.window_closes - timedelta(days=d) for d in timepoint.reminders_before_close}
    return sorted(d for d in days if assessment.window_opens < d <= assessment.window_closes)


def next_reminder_after(assessment: Assessment, schedule: Schedule, day: date) -> date | None:
    """The first reminder day strictly after ``day`` (reminders that passed are not made up)."""
    for candidate in reminder_days(assessment, schedule):
        if candidate > day:
            return candidate
    return None


# --- queueing ------------------------------------------------------------------------------


def _new_message(
    *, now: datetime, patient: Patient, assessment: Assessment | None, kind: str
) -> OutboxMessage:
    return OutboxMessage(
        patient_id=patient.id,
        assessment_id=None if assessment is None else assessment.id,
        kind=kind,
        language=patient.language,
        scheduled_for=next_sending_time(patient.site, now),
        status=MessageStatus.PENDING.value,
        attempts=0,
        created_at=now,
        updated_at=now,
    )


def can_be_messaged(patient: Patient) -> bool:
    """Followed (active, or in a follow-up track such as "not operated") and not opted out. A
    missing or invalid number is NOT a reason to skip: the message is queued and fails visibly
    at dispatch, so the nurses see it."""
    return patient.status in FOLLOWED_STATUSES and not patient.opted_out


@dataclass(frozen=True)
class Queued:
    queued: int
    skipped: int  # patient opted out or no longer active


def queue_invitations(session: Session, *, now: datetime, schedule: Schedule) -> Queued:
    """Queue the invitations of open time points whose current link was not announced: one SMS
    per patient per pass. Time points of one patient that open together (baseline and "before
    surgery" when surgery is near inclusion) share one message, with the link of the earliest
    due; its thank-you page leads on to the next (``answering.questionnaire.next_questionnaire``)
    and each keeps its own reminders. ``queued`` counts messages.

    Rows are locked (SKIP LOCKED on PostgreSQL) and marked in the same transaction, so two
    processes never queue the same invitation twice.
    """
    rows = session.scalars(
        select(Assessment)
        .where(
            Assessment.status.in_(OPEN_STATES),
            Assessment.invitation_queued_at.is_(None),
        )
        .order_by(Assessment.patient_id, Assessment.due_date, Assessment.id)
        .with_for_update(skip_locked=True, of=Assessment)
    ).all()
    queued = skipped = 0
    announced: set[int] = set()  # patients whose SMS this pass is queued
    for assessment in rows:
        patient = assessment.patient
        today = local_today(patient.site, now)
        assessment.invitation_queued_at = now
        assessment.updated_at = now
        if not can_be_messaged(patient) or today > assessment.window_closes:
            assessment.next_reminder_on = None
            skipped += 1
            continue
        if patient.id not in announced:
            session.add(
                _new_message(now=now, patient=patient, assessment=assessment, kind="invitation")
            )
            announced.add(patient.id)
            queued += 1
        assessment.next_reminder_on = next_reminder_after(assessment, schedule, today)
    session.flush()
    return Queued(queued=queued, skipped=skipped)


def queue_reminders(session: Session, *, now: datetime, schedule: Schedule) -> Queued:
    """Queue the reminders whose day has come, for time points still open or in progress.

    A completed, expired or cancelled time point has ``next_reminder_on`` cleared, so it is
    never reminded; dispatch checks again just before sending.
    """
    queued = skipped = 0
    for site in session.scalars(select(Site)):
        today = local_today(site, now)
        rows = session.scalars(
            select(Assessment)
            .join(Patient)
            .where(
                Patient.site_id == site.id,
                Assessment.next_reminder_on <= today,
                Assessment.status.in_(OPEN_STATES),
            )
            .order_by(Assessment.id)
            .with_for_update(skip_locked=True, of=Assessment)
        ).all()
        for assessment in rows:
            patient = assessment.patient
            assessment.next_reminder_on = next_reminder_after(assessment, schedule, today)
            assessment.updated_at = now
            if not can_be_messaged(patient) or today > assessment.window_closes:
                skipped += 1
                continue
            session.add(
                _new_message(now=now, patient=patient, assessment=assessment, kind="reminder")
            )
            queued += 1
    session.flush()
    return Queued(queued=queued, skipped=skipped)


class ResendRefused(ValueError):
    pass


def queue_resend(
    session: Session, *, now: datetime, actor: Actor, assessment: Assessment
) -> OutboxMessage:
    """A nurse sends the current link again (the patient lost the SMS)."""
    patient = assessment.patient
    if assessment.status not in OPEN_STATES:
        raise ResendRefused(f"the time point is {assessment.status}; there is no link to send")
    if not can_be_messaged(patient):
        raise ResendRefused(
            "the patient has opted out of SMS"
            if patient.opted_out
            else f"the patient is {patient.status}"
        )
    message = _new_message(now=now, patient=patient, assessment=assessment, kind="resend")
    session.add(message)
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action="message.resend_queued",
        object_type="assessment",
        object_id=assessment.id,
        site_id=patient.site_id,
        after={"timepoint": assessment.timepoint, "message_id": message.id},
    )
    return message


def _cancel_statement(by: str) -> Any:
    outbox = cast(Table, OutboxMessage.__table__)
    chosen = {
        "patient": outbox.c.patient_id == bindparam("p_patient"),
        # One time point (a completion) without an expanding IN, rendered again every time.
        "assessment": outbox.c.assessment_id == bindparam("p_assessment"),
        "assessments": outbox.c.assessment_id.in_(bindparam("p_assessments", expanding=True)),
    }[by]
    return (
        update(outbox)
        .where(chosen, outbox.c.status == MessageStatus.PENDING.value)
        .values(
            status=MessageStatus.CANCELLED.value,
            updated_at=bindparam("p_now"),
            error_message=bindparam("p_reason"),
        )
        .returning(outbox.c.patient_id, outbox.c.assessment_id, outbox.c.kind, outbox.c.created_at)
    )


#: Built once: every completion, schedule change and opt-out cancels messages.
_CANCEL_BY_ASSESSMENT = _cancel_statement("assessment")
_CANCEL_BY_ASSESSMENTS = _cancel_statement("assessments")
_CANCEL_BY_PATIENT = _cancel_statement("patient")


def cancel_pending_messages(
    session: Session,
    *,
    now: datetime,
    assessment_ids: Iterable[int] = (),
    patient_id: int | None = None,
    reason: str | None = None,
) -> int:
    """Cancel messages not yet claimed by a scheduler, of some time points or of a patient.

    A Core UPDATE on the session's connection, after a flush (as the session would do), so
    messages added in this transaction are cancelled too; message objects already loaded in
    the session are not updated (read them again to see the change)."""
    ids = list(assessment_ids)
    if not ids and patient_id is None:
        return 0
    session.flush()
    parameters: dict[str, Any] = {"p_now": now, "p_reason": reason}
    if patient_id is not None:
        statement = _CANCEL_BY_PATIENT
        parameters["p_patient"] = patient_id
    elif len(ids) == 1:
        statement = _CANCEL_BY_ASSESSMENT
        parameters["p_assessment"] = ids[0]
    else:
        statement = _CANCEL_BY_ASSESSMENTS
        parameters["p_assessments"] = ids
    cancelled = session.connection().execute(statement, parameters).all()
    if patient_id is None:
        for row in cancelled:
            if row.kind == "invitation":
                _release_shared(session, row.patient_id, row.assessment_id, row.created_at, ids)
    return len(cancelled)


def _release_shared(
    session: Session,
    patient_id: int,
    assessment_id: int | None,
    queued_at: datetime,
    cancelled_ids: Sequence[int],
) -> None:
    """A cancelled invitation that announced other time points too (queued in the same pass,
    :func:`queue_invitations`): those still open get an invitation of their own next pass."""
    session.execute(
        update(Assessment)
        .where(
            Assessment.patient_id == patient_id,
            Assessment.id != assessment_id,
            Assessment.id.not_in(list(cancelled_ids)),
            Assessment.status.in_(OPEN_STATES),
            Assessment.invitation_queued_at == queued_at,
        )
        .values(invitation_queued_at=None)
        .execution_options(synchronize_session=False)
    )


def invitation_went_out(session: Session, assessment: Assessment) -> bool:
    """Whether the current link's invitation reached (or may have reached) the provider."""
    since = assessment.opened_at or assessment.created_at
    return (
        session.scalar(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.assessment_id == assessment.id,
                OutboxMessage.kind.in_(("invitation", "resend")),
                OutboxMessage.status.in_(WENT_OUT),
                OutboxMessage.created_at >= since,
            )
            .limit(1)
        )
        is not None
    )


def after_reschedule(
    session: Session, *, now: datetime, schedule: Schedule, assessments: Iterable[Assessment]
) -> None:
    """A time point's window moved (its pending messages were cancelled): plan its SMS anew.

    Still open: announce the link again only if its invitation never went out; reminders follow
    the new window. Not open: nothing until the window opens (a new link, a new invitation).
    """
    for assessment in assessments:
        if assessment.status in OPEN_STATES:
            if not invitation_went_out(session, assessment):
                assessment.invitation_queued_at = None
                assessment.next_reminder_on = None
            else:
                today = local_today(assessment.patient.site, now)
                assessment.next_reminder_on = next_reminder_after(assessment, schedule, today)
        else:
            assessment.invitation_queued_at = None
            assessment.next_reminder_on = None


def announce_again_after_opt_in(session: Session, *, patient: Patient) -> int:
    """After START: open time points whose invitation never went out get one."""
    count = 0
    for assessment in patient.assessments:
        if assessment.status in OPEN_STATES and not invitation_went_out(session, assessment):
            assessment.invitation_queued_at = None
            count += 1
    return count
