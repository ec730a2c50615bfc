"""Sending queued SMS exactly once: atomic claims, retries with backoff, reconciliation.

The protocol, per message:

1. **Claim** (one short transaction, committed before any provider call): candidate rows are
   locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite serialises writers),
   then a conditional ``UPDATE ... SET status='sending' WHERE status='pending' ... RETURNING
   id``. Only the process whose UPDATE changed the row sends it. The claim also sets a lease:
   ``next_attempt_at = now + LEASE``. The lease is renewed when the message's own provider call
   starts, so it always covers the call in flight however long the calls before it took; a
   batch sent one by one (``dispatch_due``) also renews every message it still holds before each
   send. A process claims only as many messages as it has free senders (see ``dispatch_pool``).
2. **Check** just before sending: the patient is active, not opted out, has a number; the time
   point is still open and its link exists; otherwise the message is cancelled (or failed and the
   patient flagged, for a missing number) - never silently dropped.
3. **Send**, then record the result in a second transaction: ``sent`` with the provider's id;
   ``pending`` again with a backoff after 5xx/connection refused (bounded by MAX_ATTEMPTS);
   ``pending`` again after the provider's ``Retry-After`` on a 429 (a rate limit says "not
   now", never "not this message": it is not counted towards giving up);
   ``failed`` and the patient flagged after a permanent error; still ``sending`` with a short lease
   after a timeout, because the message may exist.
4. **Reconcile** every ``sending`` message whose lease ran out (its process died, or the provider
   timed out): ask the provider for a message with the same text to the same number since the
   claim. Found: ``sent`` with that id. Not found: ``pending`` again, to be sent once more.

``attempts`` counts provider calls whose answer (or lack of one) this service recorded: a claim,
or a message handed back by reconciliation after its process died, is not an attempt. So a
message is failed only after MAX_ATTEMPTS real refusals or unanswered calls, never because
processes crashed or the provider was slow.

Guarantee: at most one provider call is in flight per message at any time, and a message is
only sent again after the provider said it does not have it, so no message goes twice unless the
provider loses track of a message it accepted. A message is never lost: a crash leaves it
``sending`` and reconciliation picks it up when the lease expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..clock import utcnow
from ..crypto import Vault
from ..models import Assessment, MessageStatus, OutboxMessage, Patient, Site
from ..scheduling.assessments import OPEN_STATES, current_token, local_today
from .backends import (
    AmbiguousSmsError,
    PermanentSmsError,
    ProviderMessage,
    RateLimitedSmsError,
    SmsBackend,
    SmsError,
)
from .outbox import LINK_KINDS, can_be_messaged, in_sending_hours
from .texts import MessageTexts, patient_link

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
LEASE = timedelta(minutes=5)  # far longer than one provider call (timeout + retries)
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
AMBIGUOUS_RECHECK = timedelta(seconds=30)
#: How long to wait after a 429 that named no Retry-After.
RATE_LIMIT_WAIT = timedelta(seconds=5)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at one hour."""
    delay: timedelta = FIRST_BACKOFF * (2 ** max(0, attempts - 1))
    return min(delay, MAX_BACKOFF)


@dataclass(frozen=True)
class Dispatcher:
    """What dispatch needs besides the session: the provider and how to write the text."""

    backend: SmsBackend
    texts: MessageTexts
    vault: Vault
    base_url: str
    worker: str  # identifies this process in claimed_by
    lease: timedelta = LEASE
    #: The wall clock, read only to renew leases while a batch is being sent (a pass's ``now``
    #: stands still while a slow provider makes the real time run on).
    clock: Callable[[], datetime] = utcnow

    def status_callback(self, message_id: int) -> str:
        return f"{self.base_url}/twilio/status?m={message_id}"


@dataclass
class DispatchSummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    ambiguous: int = 0
    claimed: int = 0
    rate_limited: int = 0
    #: The longest wait a provider's rate limit asked for (None: no 429 seen).
    rate_limit_wait: timedelta | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, other: DispatchSummary) -> None:
        for name in (
            "sent",
            "retrying",
            "failed",
            "cancelled",
            "ambiguous",
            "claimed",
            "rate_limited",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.rate_limit_wait is not None:
            self.rate_limit_wait = max(self.rate_limit_wait or timedelta(0), other.rate_limit_wait)

    def __str__(self) -> str:
        text = (
            f"claimed {self.claimed}, sent {self.sent}, retrying {self.retrying}, "
            f"failed {self.failed}, cancelled {self.cancelled}, unclear {self.ambiguous}"
        )
        if self.rate_limited:
            text += f", rate-limited {self.rate_limited}"
        return text


# --- claiming --------------------------------------------------------------------------------


def sites_in_sending_hours(session: Session, now: datetime) -> list[int]:
    return [site.id for site in session.scalars(select(Site)) if in_sending_hours(site, now)]


def claim_due(
    session: Session, *, now: datetime, worker: str, limit: int, lease: timedelta = LEASE
) -> list[int]:
    """Atomically claim up to ``limit`` due messages for this worker; commits the claim."""
    site_ids = sites_in_sending_hours(session, now)
    if not site_ids:
        session.rollback()
        return []
    # Two statements in one transaction: lock the candidates (PostgreSQL: FOR UPDATE SKIP
    # LOCKED, so a second process takes the next ones instead of waiting), then flip only those
    # still pending. A LIMIT inside "IN (subquery)" may be re-evaluated by the planner, so the
    # candidate ids are fetched first.
    candidates = session.scalars(
        select(OutboxMessage.id)
        .join(Patient, Patient.id == OutboxMessage.patient_id)
        .where(
            OutboxMessage.status == MessageStatus.PENDING.value,
            OutboxMessage.scheduled_for <= now,
            or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
            Patient.site_id.in_(site_ids),
        )
        .order_by(OutboxMessage.scheduled_for, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxMessage)
    ).all()
    if not candidates:
        session.rollback()
        return []
    claimed = session.scalars(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(candidates),
            OutboxMessage.status == MessageStatus.PENDING.value,
        )
        .values(
            status=MessageStatus.SENDING.value,
            claimed_by=worker,
            claimed_at=now,
            next_attempt_at=now + lease,
            updated_at=now,
        )
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted(claimed)


# --- checks and texts --------------------------------------------------------------------------


def _why_not(
    message: OutboxMessage, patient: Patient, assessment: Assessment | None, now: datetime
) -> str | None:
    if not can_be_messaged(patient):
        return "patient opted out of SMS" if patient.opted_out else f"patient is {patient.status}"
    if message.kind in LINK_KINDS:
        if assessment is None:
            return "no time point for this message"
        if assessment.status not in OPEN_STATES:
            return f"time point is {assessment.status}"
        if local_today(patient.site, now) > assessment.window_closes:
            return "the time point's window has closed"
        if assessment.token_encrypted is None:
            return "the time point has no open link"
    return None


def render_body(
    dispatcher: Dispatcher, message: OutboxMessage, assessment: Assessment | None
) -> str | None:
    link = None
    if message.kind in LINK_KINDS:
        token = None if assessment is None else current_token(assessment, dispatcher.vault)
        if token is None:
            return None
        link = patient_link(dispatcher.base_url, token)
    return dispatcher.texts.render(message.kind, message.language, link)


def flag_patient(
    session: Session, *, now: datetime, patient: Patient, problem: str, code: str
) -> None:
    """Make a number problem visible to the nurses (and stop messaging that number)."""
    if problem == "opted_out":
        if patient.opted_out:
            return
        patient.opted_out = True
        patient.opted_out_at = now
        action = "patient.opted_out"
    else:
        if patient.phone_invalid:
            return
        patient.phone_invalid = True
        action = "patient.phone_flagged"
    patient.updated_at = now
    record(
        session,
        now=now,
        actor=Actor.system("sms"),
        action=action,
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        after={"via": "provider error", "error_code": code},
    )


def _finish(
    message: OutboxMessage, *, now: datetime, status: str, code: str | None, text: str | None
) -> None:
    message.status = status
    message.error_code = code
    message.error_message = text
    message.next_attempt_at = None
    message.updated_at = now


# --- sending ---------------------------------------------------------------------------------


def send_claimed(
    session: Session, dispatcher: Dispatcher, *, now: datetime, message_id: int
) -> DispatchSummary:
    """Send one message this worker has claimed, and record what happened (commits)."""
    summary = DispatchSummary()
    message = session.get(OutboxMessage, message_id, populate_existing=True)
    if (
        message is None
        or message.status != MessageStatus.SENDING.value
        or message.claimed_by != dispatcher.worker
    ):
        session.rollback()
        return summary  # reconciled or changed by someone else meanwhile
    patient = session.get(Patient, message.patient_id, populate_existing=True)
    assert patient is not None
    assessment = (
        None
        if message.assessment_id is None
        else session.get(Assessment, message.assessment_id, populate_existing=True)
    )
    reason = _why_not(message, patient, assessment, now)
    if reason is not None:
        _finish(message, now=now, status=MessageStatus.CANCELLED.value, code=None, text=reason)
        session.commit()
        summary.cancelled += 1
        return summary
    if patient.phone_encrypted is None or patient.phone_invalid:
        _finish(
            message,
            now=now,
            status=MessageStatus.FAILED.value,
            code="no_valid_phone",
            text="the patient has no valid mobile number: call the patient and correct it",
        )
        flag_patient(session, now=now, patient=patient, problem="invalid", code="no_valid_phone")
        session.commit()
        summary.failed += 1
        return summary
    body = render_body(dispatcher, message, assessment)
    if body is None:
        _finish(message, now=now, status=MessageStatus.CANCELLED.value, code=None, text="no link")
        session.commit()
        summary.cancelled += 1
        return summary
    to = dispatcher.vault.decrypt(patient.phone_encrypted)
    sender = patient.site.sms_sender
    # Renew the lease for this call, and end the read transaction: no locks or snapshot are
    # held during the call. Reconciliation leaves the message alone until the call is over.
    message.next_attempt_at = now + dispatcher.lease
    message.updated_at = now
    session.commit()

    outcome: ProviderMessage | SmsError
    try:
        outcome = dispatcher.backend.send(
            to=to,
            body=body,
            status_callback=dispatcher.status_callback(message.id),
            sender=sender,
        )
    except SmsError as exc:
        outcome = exc
    # Lock the row again: a status callback may have arrived while the call was in flight.
    session.refresh(message, with_for_update=True)
    if not isinstance(outcome, RateLimitedSmsError):
        message.attempts += 1  # an answer, a refusal or no answer: a real attempt
    if isinstance(outcome, ProviderMessage):
        mark_sent(session, message, now=now, sid=outcome.sid, provider_status=outcome.status)
        session.commit()
        summary.sent += 1
        return summary
    if message.status != MessageStatus.SENDING.value or message.claimed_by != dispatcher.worker:
        session.commit()  # settled by someone else meanwhile
        return summary
    problem: SmsError = outcome
    if isinstance(problem, AmbiguousSmsError):
        message.error_code, message.error_message = problem.code, problem.message
        message.next_attempt_at = now + AMBIGUOUS_RECHECK  # reconcile soon, then maybe resend
        message.updated_at = now
        summary.ambiguous += 1
    elif isinstance(problem, PermanentSmsError):
        _finish(
            message,
            now=now,
            status=MessageStatus.FAILED.value,
            code=problem.code,
            text=problem.message,
        )
        if problem.recipient_problem is not None:
            flag_patient(
                session,
                now=now,
                patient=patient,
                problem=problem.recipient_problem,
                code=problem.code,
            )
        summary.failed += 1
    elif isinstance(problem, RateLimitedSmsError):  # "not now": wait as long as asked
        wait = problem.retry_after if problem.retry_after is not None else RATE_LIMIT_WAIT
        message.status = MessageStatus.PENDING.value
        message.error_code, message.error_message = problem.code, problem.message
        message.next_attempt_at = now + wait
        message.updated_at = now
        summary.rate_limited += 1
        summary.rate_limit_wait = wait
    elif message.attempts >= MAX_ATTEMPTS:  # transient, and out of attempts
        _finish(
            message,
            now=now,
            status=MessageStatus.FAILED.value,
            code=problem.code,
            text=f"gave up after {message.attempts} attempts: {problem.message}",
        )
        summary.failed += 1
    else:  # transient: nothing was sent, try again after a backoff
        message.status = MessageStatus.PENDING.value
        message.error_code, message.error_message = problem.code, problem.message
        message.next_attempt_at = now + backoff(message.attempts)
        message.updated_at = now
        summary.retrying += 1
    session.commit()
    return summary


def mark_sent(
    session: Session, message: OutboxMessage, *, now: datetime, sid: str, provider_status: str
) -> None:
    """Record the provider's acceptance; a status callback may already have moved it on.

    The first acceptance goes into the audit log (kind and provider id: never the text or number).
    """
    if message.provider_id is None:
        message.provider_id = sid
    if message.sent_at is None:
        patient = session.get(Patient, message.patient_id)
        record(
            session,
            now=now,
            actor=Actor.system(),
            action="message.sent",
            object_type="message",
            object_id=message.id,
            site_id=patient.site_id if patient is not None else None,
            after={"kind": message.kind, "assessment_id": message.assessment_id, "sid": sid},
        )
    message.sent_at = message.sent_at or now
    if message.status == MessageStatus.SENDING.value:
        message.status = MessageStatus.SENT.value
        message.provider_status = provider_status
    message.next_attempt_at = None
    message.error_code = None
    message.error_message = None
    message.updated_at = now


def dispatch_due(
    session: Session, dispatcher: Dispatcher, *, now: datetime, batch: int = 50
) -> DispatchSummary:
    """Claim and send one batch of due messages. At most once per claim (see module doc)."""
    summary = DispatchSummary()
    ids = claim_due(session, now=now, worker=dispatcher.worker, limit=batch, lease=dispatcher.lease)
    summary.claimed = len(ids)
    for position, message_id in enumerate(ids):
        # Every message still held gets a fresh lease before each send, so however slow the
        # provider, recovery never takes back a message this worker is about to send.
        renew_leases(session, dispatcher, ids[position:])
        try:
            summary.add(send_claimed(session, dispatcher, now=now, message_id=message_id))
        except Exception:
            # Leave it claimed: reconciliation decides after the lease, never a blind resend.
            session.rollback()
            log.exception("dispatch of message %s failed; it will be reconciled", message_id)
    return summary


def renew_leases(session: Session, dispatcher: Dispatcher, message_ids: list[int]) -> None:
    """Extend the lease of the messages this worker still holds (commits)."""
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(message_ids),
            OutboxMessage.status == MessageStatus.SENDING.value,
            OutboxMessage.claimed_by == dispatcher.worker,
        )
        .values(next_attempt_at=dispatcher.clock() + dispatcher.lease)
        .execution_options(synchronize_session=False)
    )
    session.commit()


# --- reconciliation --------------------------------------------------------------------------


def reconcile_stuck(
    session: Session, dispatcher: Dispatcher, *, now: datetime, limit: int = 100
) -> DispatchSummary:
    """Settle messages left ``sending`` (a crash, or a provider timeout) by asking the provider."""
    summary = DispatchSummary()
    stuck = session.execute(
        select(OutboxMessage.id, OutboxMessage.claimed_by)
        .where(
            OutboxMessage.status == MessageStatus.SENDING.value,
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.next_attempt_at)
        .limit(limit)
    ).all()
    session.rollback()
    for message_id, previous_owner in stuck:
        taken = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == MessageStatus.SENDING.value,
                OutboxMessage.next_attempt_at <= now,
                OutboxMessage.claimed_by == previous_owner,
            )
            .values(
                claimed_by=dispatcher.worker, next_attempt_at=now + dispatcher.lease, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another process took it
        summary.claimed += 1
        try:
            summary.add(_reconcile_one(session, dispatcher, now=now, message_id=message_id))
        except Exception:
            session.rollback()
            log.exception("reconciliation of message %s failed; it will be retried", message_id)
    return summary


def _reconcile_one(
    session: Session, dispatcher: Dispatcher, *, now: datetime, message_id: int
) -> DispatchSummary:
    summary = DispatchSummary()
    message = session.get(OutboxMessage, message_id, populate_existing=True)
    assert message is not None
    patient = session.get(Patient, message.patient_id, populate_existing=True)
    assert patient is not None
    assessment = (
        None
        if message.assessment_id is None
        else session.get(Assessment, message.assessment_id, populate_existing=True)
    )
    if patient.phone_encrypted is None or message.claimed_at is None:
        message.status = MessageStatus.PENDING.value  # never reached a provider: dispatch decides
        message.next_attempt_at = now
        session.commit()
        return summary
    to = dispatcher.vault.decrypt(patient.phone_encrypted)
    body = render_body(dispatcher, message, assessment)
    since = message.claimed_at
    session.commit()
    try:
        if body is None:
            found = None  # the link is gone: the patient no longer needs it either way
        else:
            found = dispatcher.backend.find_sent(to=to, since=since, body=body)
    except SmsError as exc:
        message.next_attempt_at = now + backoff(message.attempts)
        message.error_code, message.error_message = exc.code, f"reconciliation: {exc.message}"
        session.commit()
        summary.ambiguous += 1
        return summary
    if found is not None:
        mark_sent(session, message, now=now, sid=found.sid, provider_status=found.status)
        summary.sent += 1
    elif body is None:
        _finish(
            message,
            now=now,
            status=MessageStatus.CANCELLED.value,
            code=None,
            text="unclear whether sent; the time point is closed, so not sent again",
        )
        summary.cancelled += 1
    elif message.attempts >= MAX_ATTEMPTS:
        _finish(
            message,
            now=now,
            status=MessageStatus.FAILED.value,
            code=message.error_code or "gave_up",
            text=f"not accepted after {message.attempts} attempts",
        )
        summary.failed += 1
    else:
        message.status = MessageStatus.PENDING.value  # the provider has no such message: resend
        message.next_attempt_at = now
        message.updated_at = now
        summary.retrying += 1
    session.commit()
    return summary
