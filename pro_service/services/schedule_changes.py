"""When the schedule's anchors move: surgery date set, moved or removed; patient leaves the study.

Rules (REDCap freezes queued invitations; we do not):
- time points that have not started (scheduled, open without answers, missed or cancelled
  without answers) are recomputed from the new date; one whose new window is open now is open,
  one whose window lies ahead is scheduled again, one whose window has passed is missed;
- in-progress and completed time points are never touched: a completed one is never re-issued;
- pending messages of every recomputed time point are cancelled; the scheduler queues new ones
  when the new window opens;
- every change is audited with before/after and the reason.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..crypto import Vault
from ..models import (
    Assessment,
    AssessmentStatus,
    Patient,
    PatientStatus,
)
from ..scheduling.schedule import Schedule
from .assessments import close_link, create_assessments, issue_token, local_today
from .messaging import after_reschedule, cancel_pending_messages

MAX_SURGERY_AFTER_INCLUSION = timedelta(days=3 * 365)
UNSTARTED = (
    AssessmentStatus.SCHEDULED.value,
    AssessmentStatus.OPEN.value,
    AssessmentStatus.EXPIRED.value,
    AssessmentStatus.CANCELLED.value,
)
LEAVING_STATUSES = (
    PatientStatus.WITHDRAWN.value,
    PatientStatus.DECEASED.value,
    PatientStatus.NOT_OPERATED.value,
)


class ScheduleChangeError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _require_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ScheduleChangeError("reason", "a reason is required for every change to study data")
    return reason


def _has_answers(assessment: Assessment) -> bool:
    return assessment.started_at is not None or bool(assessment.responses)


def change_surgery_date(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    schedule: Schedule,
    vault: Vault,
    patient: Patient,
    new_date: date | None,
    reason: str,
) -> list[Assessment]:
    """Set, move or remove the surgery date; returns the time points that changed."""
    reason = _require_reason(reason)
    if patient.status != PatientStatus.ACTIVE.value:
        raise ScheduleChangeError("surgery_date", f"the patient is {patient.status}")
    if new_date is not None:
        if new_date < patient.inclusion_date:
            raise ScheduleChangeError(
                "surgery_date", "the surgery date is before the inclusion date"
            )
        if new_date > patient.inclusion_date + MAX_SURGERY_AFTER_INCLUSION:
            raise ScheduleChangeError(
                "surgery_date", "the surgery date is more than three years after inclusion"
            )
    old_date = patient.surgery_date
    if old_date == new_date:
        return []

    today = local_today(patient.site, now)
    changed: list[Assessment] = []
    before: dict[str, object] = {"surgery_date": old_date}
    after: dict[str, object] = {"surgery_date": new_date}
    patient.surgery_date = new_date
    patient.updated_at = now

    for assessment in list(patient.assessments):
        if assessment.anchor != "surgery":
            continue
        if assessment.status not in UNSTARTED or _has_answers(assessment):
            continue  # in progress or completed: left alone
        old = (assessment.status, assessment.due_date)
        if new_date is None:
            if assessment.status == AssessmentStatus.CANCELLED.value:
                continue
            assessment.status = AssessmentStatus.CANCELLED.value
            assessment.closed_at = now
            close_link(assessment)
        else:
            window = schedule.timepoint(assessment.timepoint).window_for(new_date)
            assessment.due_date = window.due
            assessment.window_opens = window.opens
            assessment.window_closes = window.closes
            assessment.closed_at = None
            if window.closes < today:
                assessment.status = AssessmentStatus.EXPIRED.value
                assessment.closed_at = now
                close_link(assessment)
            elif window.opens <= today:
                if assessment.status != AssessmentStatus.OPEN.value:
                    assessment.status = AssessmentStatus.OPEN.value
                    assessment.opened_at = now
                    issue_token(assessment, vault)
            else:
                assessment.status = AssessmentStatus.SCHEDULED.value
                assessment.opened_at = None
                assessment.token_hash = None
                close_link(assessment)
        assessment.updated_at = now
        if (assessment.status, assessment.due_date) != old:
            changed.append(assessment)
            before[assessment.timepoint] = {"status": old[0], "due_date": old[1].isoformat()}
            after[assessment.timepoint] = {
                "status": assessment.status,
                "due_date": assessment.due_date.isoformat(),
            }
    cancel_pending_messages(
        session, now=now, assessment_ids=[a.id for a in changed], reason="surgery date changed"
    )
    after_reschedule(session, now=now, schedule=schedule, assessments=changed)

    if new_date is not None:
        for created in create_assessments(session, now=now, patient=patient, schedule=schedule):
            changed.append(created)
            after[created.timepoint] = {
                "status": created.status,
                "due_date": created.due_date.isoformat(),
            }
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action="patient.surgery_date_changed",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before=before,
        after=after,
        reason=reason,
    )
    return changed


def end_participation(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    patient: Patient,
    status: str,
    reason: str,
) -> list[Assessment]:
    """Withdrawal, death or "not operated": cancel every time point not yet completed."""
    reason = _require_reason(reason)
    if status not in LEAVING_STATUSES:
        raise ScheduleChangeError("status", f"status must be one of {', '.join(LEAVING_STATUSES)}")
    if patient.status != PatientStatus.ACTIVE.value:
        raise ScheduleChangeError("status", f"the patient is already {patient.status}")
    old_status = patient.status
    patient.status = status
    patient.updated_at = now
    cancelled = []
    for assessment in patient.assessments:
        if assessment.status in (
            AssessmentStatus.SCHEDULED.value,
            AssessmentStatus.OPEN.value,
            AssessmentStatus.IN_PROGRESS.value,
        ):
            assessment.status = AssessmentStatus.CANCELLED.value
            assessment.closed_at = now
            assessment.updated_at = now
            close_link(assessment)
            cancelled.append(assessment)
    cancel_pending_messages(
        session, now=now, patient_id=patient.id, reason=f"patient {status.replace('_', ' ')}"
    )
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action=f"patient.{status}",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before={"status": old_status},
        after={"status": status, "cancelled_timepoints": [a.timepoint for a in cancelled]},
        reason=reason,
    )
    return cancelled
