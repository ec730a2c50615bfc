"""Retention: erasing the phone numbers of patients whose follow-up has ended (GDPR data
minimisation). The study data (answers, scores, study ID) stay; only the means of contacting
the patient go. Every erasure is audited, without the number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import Assessment, AssessmentStatus, MessageStatus, OutboxMessage, Patient

#: Time points that still need the patient's phone: waiting to open, open, being answered.
ONGOING = (
    AssessmentStatus.SCHEDULED.value,
    AssessmentStatus.OPEN.value,
    AssessmentStatus.IN_PROGRESS.value,
)


@dataclass(frozen=True)
class Purgeable:
    patient_id: int
    study_id: str
    followed_until: date | None  # the last window's closing day; None: no time points at all


def purgeable(session: Session, *, ended_before: date) -> list[Purgeable]:
    """Patients with a phone number stored whose follow-up ended before ``ended_before``: no
    time point left to open or answer, and the last window closed before that day."""
    ongoing = (
        select(Assessment.id)
        .where(Assessment.patient_id == Patient.id, Assessment.status.in_(ONGOING))
        .correlate(Patient)
        .exists()
    )
    last_window = (
        select(func.max(Assessment.window_closes))
        .where(Assessment.patient_id == Patient.id)
        .correlate(Patient)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Patient.id, Patient.study_id, last_window.label("until"))
        .where(Patient.phone_encrypted.is_not(None), ~ongoing)
        .order_by(Patient.study_id)
    ).all()
    return [
        Purgeable(row.id, row.study_id, row.until)
        for row in rows
        if row.until is None or row.until < ended_before
    ]


def purge_contact_details(
    session: Session, *, now: datetime, actor: Actor, ended_before: date
) -> list[Purgeable]:
    """Erase the phone numbers of :func:`purgeable` patients and cancel any SMS still waiting
    for them. Returns who was purged. Running it again finds no one new."""
    purged = purgeable(session, ended_before=ended_before)
    patients = {
        p.id: p
        for p in session.scalars(
            select(Patient).where(Patient.id.in_([e.patient_id for e in purged]))
        )
    }
    for entry in purged:
        patient = patients[entry.patient_id]
        patient.phone_encrypted = None
        patient.phone_lookup = None
        patient.updated_at = now
        cancelled: int = session.execute(  # type: ignore[attr-defined]
            update(OutboxMessage)
            .where(
                OutboxMessage.patient_id == patient.id,
                OutboxMessage.status == MessageStatus.PENDING.value,
            )
            .values(
                status=MessageStatus.CANCELLED.value,
                updated_at=now,
                error_message="contact details erased",
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        record(
            session,
            now=now,
            actor=actor,
            action="patient.contact_details_purged",
            object_type="patient",
            object_id=patient.id,
            site_id=patient.site_id,
            before={"has_phone": True},
            after={
                "has_phone": False,
                "followed_until": entry.followed_until,
                "messages_cancelled": int(cancelled),
            },
            reason=f"retention: follow-up ended before {ended_before.isoformat()}",
        )
    session.flush()
    return purged
