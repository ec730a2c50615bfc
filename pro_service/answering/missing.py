"""Missing data: the reasons a missed time point can carry, kept as data in
``questionnaires/missing-reasons.yaml``, recording one (audited), and the reason the service can
propose itself (invitations never delivered, patient opted out of SMS)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import Assessment, AssessmentStatus, MessageStatus, OutboxMessage, Patient

LANGS = ("sv", "fi", "en")
CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
#: Time points that can carry a missing reason: missed ones (window closed, nothing received).
MISSED = AssessmentStatus.EXPIRED.value
#: Reasons the service proposes when it knows them itself; they must be in the reason file.
NOT_DELIVERED = "not-delivered"
DECLINED = "declined"
TEXT_LIMIT = 500


class MissingReasonFileError(ValueError):
    def __init__(self, path: Path, field: str, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}")


class MissingReasonError(ValueError):
    """A reason that cannot be recorded; the message names the problem."""


@dataclass(frozen=True)
class MissingReason:
    code: str
    labels: dict[str, str]
    needs_text: bool

    def label(self, language: str) -> str:
        return self.labels.get(language, self.labels["en"])


@dataclass(frozen=True)
class MissingReasons:
    reasons: tuple[MissingReason, ...]

    def get(self, code: str) -> MissingReason | None:
        return next((reason for reason in self.reasons if reason.code == code), None)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(reason.code for reason in self.reasons)


def load_missing_reasons(path: Path) -> MissingReasons:
    """Load and validate the reason list; any problem names the file and the field."""
    if not path.is_file():
        raise MissingReasonFileError(path, "(file)", "the missing-reason file does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MissingReasonFileError(path, "(file)", f"not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise MissingReasonFileError(path, "(top level)", "must map reason codes to labels")
    reasons = []
    for code, entry in data.items():
        if not isinstance(code, str) or not CODE.match(code):
            raise MissingReasonFileError(
                path, str(code), "a code is lower-case letters, digits and dashes (at most 40)"
            )
        if not isinstance(entry, dict):
            raise MissingReasonFileError(path, code, "give a label for sv, fi and en")
        extra = sorted(set(entry) - {*LANGS, "text"})
        if extra:
            raise MissingReasonFileError(
                path, f"{code}.{extra[0]}", "unknown key (known: sv, fi, en, text)"
            )
        labels = {}
        for lang in LANGS:
            label = entry.get(lang)
            if not isinstance(label, str) or not label.strip():
                raise MissingReasonFileError(path, f"{code}.{lang}", "missing or empty")
            labels[lang] = label.strip()
        text = entry.get("text")
        if text not in (None, "required"):
            raise MissingReasonFileError(path, f"{code}.text", "the only value is 'required'")
        reasons.append(MissingReason(code=code, labels=labels, needs_text=text == "required"))
    known = {reason.code for reason in reasons}
    for proposed in (NOT_DELIVERED, DECLINED):
        if proposed not in known:
            raise MissingReasonFileError(
                path, proposed, "the service proposes this reason itself: keep it in the list"
            )
    return MissingReasons(tuple(reasons))


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
            f"Unknown missing reason {code!r} (known: {', '.join(reasons.codes)})."
        )
    if assessment.status != MISSED:
        raise MissingReasonError(
            f"Time point {assessment.timepoint} is {assessment.status}, not missed: "
            "only a missed time point carries a missing reason."
        )
    cleaned = (text or "").strip() or None
    if reason.needs_text and cleaned is None:
        raise MissingReasonError(f"The reason {code!r} needs a text saying what happened.")
    if cleaned is not None and len(cleaned) > TEXT_LIMIT:
        raise MissingReasonError(f"The reason's text is longer than {TEXT_LIMIT} characters.")
    if not reason.needs_text:
        cleaned = None
    before = {"missing_reason": assessment.missing_reason, "text": assessment.missing_reason_text}
    if assessment.missing_reason is not None:
        if (assessment.missing_reason, assessment.missing_reason_text) == (code, cleaned):
            return
        if not (correction_reason or "").strip():
            raise MissingReasonError(
                f"Time point {assessment.timepoint} already has the reason "
                f"{assessment.missing_reason!r}: changing it needs a reason for the correction."
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
