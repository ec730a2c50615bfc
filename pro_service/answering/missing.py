"""Missing data: recording the reason a missed time point carries (audited), and the reason the
service can propose itself (invitations never delivered, patient opted out of SMS). The reasons
themselves are data (:mod:`.missing_reasons`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import Assessment, AssessmentStatus, MessageStatus, OutboxMessage, Patient
from .missing_reasons import (
    CODE,
    DECLINED,
    LANGS,
    NOT_DELIVERED,
    TEXT_LIMIT,
    MissingReason,
    MissingReasonFileError,
    MissingReasons,
    load_missing_reasons,
)

__all__ = [
    "CODE",
    "DECLINED",
    "LANGS",
    "NOT_DELIVERED",
    "TEXT_LIMIT",
    "MissingReason",
    "MissingReasonFileError",
    "MissingReasons",
    "load_missing_reasons",
]

#: Time points that can carry a missing reason: missed ones (window closed, nothing received).
MISSED = AssessmentStatus.EXPIRED.value


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for translation"
    """Mark ``message`` for the translation catalog; the staff pages translate it."""
    return message


class MissingReasonError(ValueError):
    """A reason that cannot be recorded. ``field`` names the form field at fault; ``message`` is
    an English msgid with ``%(name)s`` placeholders filled from ``params``."""

    def __init__(self, field: str, message: str, **params: object) -> None:
        self.field = field
        self.message = message
        self.params = params
        super().__init__(message % params if params else message)


def record_missing_reason(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    reasons: MissingReasons,
    assessment: Assessment,
    code: str,
    text: str | None = None,
    correction_reason: str | None = None,
) -> None:
    """Record why a missed time point has no answers. Changing a recorded reason needs a
    ``correction_reason``. Refused (nothing changed) for an unknown code, a time point that is
    not missed, or "other" without text."""
    reason = reasons.get(code)
    if reason is None:
        raise MissingReasonError(
            "reason",
            N_("Unknown missing reason %(code)s (known: %(known)s)."),
            code=repr(code),
            known=", ".join(reasons.codes),
        )
    if assessment.status != MISSED:
        raise MissingReasonError(
            "reason",
            N_(
                "Time point %(timepoint)s is %(status)s, not missed: only a missed time point "
                "carries a missing reason."
            ),
            timepoint=assessment.timepoint,
            status=assessment.status,
        )
    cleaned = (text or "").strip() or None
    if reason.needs_text and cleaned is None:
        raise MissingReasonError(
            "text", N_("The reason %(code)s needs a text saying what happened."), code=repr(code)
        )
    if cleaned is not None and len(cleaned) > TEXT_LIMIT:
        raise MissingReasonError(
            "text", N_("The text is longer than %(limit)s characters."), limit=TEXT_LIMIT
        )
    if not reason.needs_text:
        cleaned = None
    before = {"missing_reason": assessment.missing_reason, "text": assessment.missing_reason_text}
    if assessment.missing_reason is not None:
        if (assessment.missing_reason, assessment.missing_reason_text) == (code, cleaned):
            return
        if not (correction_reason or "").strip():
            raise MissingReasonError(
                "correction",
                N_(
                    "Time point %(timepoint)s already has the reason %(code)s: changing it "
                    "needs a reason for the correction."
                ),
                timepoint=assessment.timepoint,
                code=repr(assessment.missing_reason),
            )
    assessment.missing_reason = code
    assessment.missing_reason_text = cleaned
    assessment.missing_reason_by = f"{actor.type}:{actor.id}"
    assessment.missing_reason_at = now
    assessment.updated_at = now
    record(
        session,
        now=now,
        actor=actor,
        action="assessment.missing_reason",
        object_type="assessment",
        object_id=assessment.id,
        site_id=assessment.patient.site_id,
        before=before if before["missing_reason"] is not None else None,
        after={"missing_reason": code, "text": cleaned},
        reason=(correction_reason or "").strip() or None,
    )
    session.flush()


def proposed_reason(session: Session, assessment: Assessment) -> str | None:
    """The reason the service knows for a missed time point: the patient had opted out of SMS
    (declined) or none of its messages reached the phone (not delivered); else None."""
    if assessment.status != MISSED:
        return None
    patient: Patient = assessment.patient
    if patient.opted_out and (
        patient.opted_out_at is None or patient.opted_out_at.date() <= assessment.window_closes
    ):
        return DECLINED
    statuses = set(
        session.scalars(
            select(OutboxMessage.status).where(OutboxMessage.assessment_id == assessment.id)
        )
    )
    delivered_or_pending = {
        MessageStatus.DELIVERED.value,
        MessageStatus.SENT.value,
        MessageStatus.PENDING.value,
        MessageStatus.SENDING.value,
    }
    if statuses and not statuses & delivered_or_pending:
        failed = {MessageStatus.UNDELIVERED.value, MessageStatus.FAILED.value}
        if statuses & failed:
            return NOT_DELIVERED
    return None
