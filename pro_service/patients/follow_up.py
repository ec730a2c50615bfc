"""Follow-up complete: an active patient with every time point of the schedule created (the
surgery date is known) and none left to answer (none scheduled, open or in progress) becomes
"completed", once, audited. The scheduler's windows pass runs it after closing windows; the
board filters by it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import Assessment, AssessmentStatus, Patient, PatientStatus
from ..scheduling.schedule import Schedule

#: Time points still to come or to answer.
_LEFT = (
    AssessmentStatus.SCHEDULED.value,
    AssessmentStatus.OPEN.value,
    AssessmentStatus.IN_PROGRESS.value,
)


def complete_finished_follow_ups(session: Session, *, now: datetime, schedule: Schedule) -> int:
    """Mark every finished follow-up "completed"; returns how many. One UPDATE decides (a
    second scheduler process running it at the same time finds them done and does nothing)."""
    keys = [tp.key for tp in schedule.main_timepoints]
    created = (
        select(func.count())
        .where(Assessment.patient_id == Patient.id, Assessment.timepoint.in_(keys))
        .correlate(Patient)
        .scalar_subquery()
    )
    left = exists().where(Assessment.patient_id == Patient.id, Assessment.status.in_(_LEFT))
    finished = session.execute(
        update(Patient)
        .where(
            Patient.status == PatientStatus.ACTIVE.value,
            Patient.surgery_date.is_not(None),
            ~left,
            created == len(keys),
        )
        .values(status=PatientStatus.COMPLETED.value, updated_at=now)
        .returning(Patient.id, Patient.site_id)
        .execution_options(synchronize_session=False)
    ).all()
    for patient_id, site_id in finished:
        record(
            session,
            now=now,
            actor=Actor.system(),
            action="patient.follow_up_completed",
            object_type="patient",
            object_id=patient_id,
            site_id=site_id,
            before={"status": PatientStatus.ACTIVE.value},
            after={"status": PatientStatus.COMPLETED.value},
        )
    return len(finished)
