"""What the SMS provider tells us: delivery status callbacks and patients' replies (STOP/START).

Both are idempotent: a callback repeated or arriving late never moves a message's status
backwards; a second STOP changes nothing more.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..crypto import Vault
from ..models import InboundMessage, MessageStatus, OutboxMessage, Patient
from .dispatch import flag_patient
from .outbox import announce_again_after_opt_in, cancel_pending_messages
from .twilio_backend import classify_error_code

# Provider status -> ours. "accepted/queued/sending" mean the provider has it: sent, for us.
PROVIDER_STATUS = {
    "accepted": MessageStatus.SENT.value,
    "scheduled": MessageStatus.SENT.value,
    "queued": MessageStatus.SENT.value,
    "sending": MessageStatus.SENT.value,
    "sent": MessageStatus.SENT.value,
    "delivered": MessageStatus.DELIVERED.value,
    "read": MessageStatus.DELIVERED.value,
    "undelivered": MessageStatus.UNDELIVERED.value,
    "failed": MessageStatus.FAILED.value,
    "canceled": MessageStatus.FAILED.value,
}
RANK = {
    MessageStatus.PENDING.value: 0,
    MessageStatus.SENDING.value: 1,
    MessageStatus.SENT.value: 2,
    MessageStatus.DELIVERED.value: 3,
    MessageStatus.UNDELIVERED.value: 3,
    MessageStatus.FAILED.value: 3,
    MessageStatus.CANCELLED.value: 3,
}


class UnknownStatus(ValueError):
    pass


@dataclass(frozen=True)
class CallbackResult:
    found: bool
    changed: bool


def apply_status_callback(
    session: Session,
    *,
    now: datetime,
    sid: str,
    provider_status: str,
    error_code: str | None = None,
    message_id: int | None = None,
) -> CallbackResult:
    """Record a delivery report. ``message_id`` comes from our own callback URL, so a report that
    overtakes the dispatcher's own record still finds its message."""
    ours = PROVIDER_STATUS.get(provider_status.lower())
    if ours is None:
        raise UnknownStatus(f"unknown message status {provider_status!r}")
    conditions = [OutboxMessage.provider_id == sid]
    if message_id is not None:
        conditions.append(
            (OutboxMessage.id == message_id)
            & or_(OutboxMessage.provider_id.is_(None), OutboxMessage.provider_id == sid)
        )
    message = session.scalars(
        select(OutboxMessage).where(or_(*conditions)).with_for_update().limit(1)
    ).first()
    if message is None:
        return CallbackResult(found=False, changed=False)
    if message.provider_id is None:
        message.provider_id = sid
    if RANK[ours] <= RANK[message.status]:
        session.flush()
        return CallbackResult(found=True, changed=False)  # repeated or late: never backwards
    message.status = ours
    message.provider_status = provider_status.lower()
    message.sent_at = message.sent_at or now
    message.next_attempt_at = None
    message.updated_at = now
    if ours in (MessageStatus.UNDELIVERED.value, MessageStatus.FAILED.value):
        message.error_code = error_code or None
        message.error_message = f"provider reports {provider_status.lower()}"
        problem = classify_error_code(error_code)
        if problem is not None:
            patient = session.get(Patient, message.patient_id)
            assert patient is not None
            flag_patient(session, now=now, patient=patient, problem=problem, code=str(error_code))
    session.flush()
    return CallbackResult(found=True, changed=True)


# --- replies -----------------------------------------------------------------------------------

# Compared after upper-casing and removing accents (BÖRJA == BORJA, LOPETÄ == LOPETA).
STOP_WORDS = frozenset(
    {
        # English (the provider's own list)
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "OPTOUT",
        "REVOKE",
        # Swedish
        "STOPP",
        "SLUTA",
        "AVSLUTA",
        "AVBRYT",
        "AVREGISTRERA",
        # Finnish
        "LOPETA",
        "LOPPU",
        "LOPETUS",
        "PERU",
        "PERUUTA",
        "POISTU",
    }
)
START_WORDS = frozenset(
    {
        "START",
        "UNSTOP",
        "YES",
        "BORJA",  # BÖRJA
        "STARTA",
        "ALOITA",
        "JATKA",
    }
)


def keyword(body: str) -> str:
    """The first word of a reply, upper-cased, without accents or punctuation."""
    words = body.strip().split()
    if not words:
        return ""
    decomposed = unicodedata.normalize("NFKD", words[0])
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^A-Za-z]", "", plain).upper()


@dataclass(frozen=True)
class InboundResult:
    action: str  # opted_out, opted_in, ignored, unknown_sender, replayed
    language: str | None  # for the confirmation


def first_delivery(session: Session, *, now: datetime, provider_sid: str) -> bool:
    """Remember the provider's id of an inbound message; False when it was seen before.

    One ``INSERT ... ON CONFLICT DO NOTHING``: of two copies arriving at once, the second waits
    for the first to commit and then inserts nothing.
    """
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    inserted = session.execute(
        dialect.insert(InboundMessage)
        .values(provider_sid=provider_sid, received_at=now)
        .on_conflict_do_nothing(index_elements=["provider_sid"])
        .returning(InboundMessage.provider_sid)
    ).scalar()
    return inserted is not None


def handle_inbound(
    session: Session,
    *,
    now: datetime,
    vault: Vault,
    from_number: str,
    body: str,
    provider_sid: str | None = None,
) -> InboundResult:
    """A patient's reply: STOP words opt out (pending SMS cancelled), START words opt back in.

    A replay of a message already handled (the same ``provider_sid``, e.g. a webhook retried
    by the provider or re-sent by anyone who saw it) changes nothing and confirms nothing.
    """
    if provider_sid and not first_delivery(session, now=now, provider_sid=provider_sid):
        return InboundResult("replayed", None)
    word = keyword(body)
    if word in STOP_WORDS:
        action = "opted_out"
    elif word in START_WORDS:
        action = "opted_in"
    else:
        return InboundResult("ignored", None)
    patients = session.scalars(
        select(Patient)
        .where(Patient.phone_lookup == vault.phone_lookup(from_number.strip()))
        .order_by(Patient.id)
        .with_for_update()
    ).all()
    if not patients:
        return InboundResult("unknown_sender", None)
    for patient in patients:
        before = patient.opted_out
        if action == "opted_out":
            patient.opted_out = True
            patient.opted_out_at = patient.opted_out_at or now
            cancel_pending_messages(
                session, now=now, patient_id=patient.id, reason="patient replied STOP"
            )
        else:
            patient.opted_out = False
            patient.opted_out_at = None
            announce_again_after_opt_in(session, patient=patient)
        if before != patient.opted_out:
            patient.updated_at = now
            record(
                session,
                now=now,
                actor=Actor("patient", str(patient.id)),
                action=f"patient.{action}",
                object_type="patient",
                object_id=patient.id,
                site_id=patient.site_id,
                before={"opted_out": before},
                after={"opted_out": patient.opted_out, "via": "sms reply", "keyword": word},
            )
    session.flush()
    return InboundResult(action, patients[0].language)
