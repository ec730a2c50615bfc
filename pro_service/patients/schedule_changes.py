"""When the schedule's anchors move: surgery date set, moved or removed; patient leaves the study.

Rules (REDCap freezes queued invitations; we do not):
- time points that have not started (scheduled, open without answers, missed or cancelled
  without answers) are recomputed from the new date; one whose new window is open now is open,
  one whose window lies ahead is scheduled again, one whose window has passed is missed;
- started time points (answers given, not submitted) follow the new date too: their window and
  reminders move and their answers are kept; when the new window has already closed the link
  takes no more answers and the scheduler's next pass closes the time point as partial and
  scores it (a "before surgery" form is never finished after the new surgery date);
- completed and partial time points are never touched: a completed one is never re-issued;
- pending messages of every recomputed time point are cancelled; the scheduler queues new ones
  when the new window opens;
- every change is audited with before/after and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from ..answering.responses import score_partial
from ..audit import Actor, record
from ..crypto import Vault
from ..instruments import InstrumentRegistry
from ..messaging.outbox import after_reschedule, cancel_pending_messages
from ..models import (
    Assessment,
    AssessmentStatus,
    Patient,
    PatientStatus,
)
from ..scheduling.assessments import (
    OPEN_STATES,
    anchor_dates,
    close_link,
    create_assessments,
    issue_token,
    local_today,
)
from ..scheduling.schedule import Schedule

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


def N_(message: str) -> str:
    """Marks an error message for translation; the staff pages translate it when shown."""
    return message


class ScheduleChangeError(ValueError):
    """A refused change. ``field`` names the form field at fault; ``message`` is an English
    msgid with ``%(name)s`` placeholders filled from ``params`` (the pages translate it)."""

    def __init__(self, field: str, message: str, **params: object) -> None:
        self.field = field
        self.message = message
        self.params = params
        super().__init__(f"{field}: {message % params if params else message}")


def require_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ScheduleChangeError(
            "reason", N_("A reason is required for every change to study data.")
        )
    return reason


def _has_answers(assessment: Assessment) -> bool:
    return assessment.started_at is not None or bool(assessment.responses)


@dataclass
class Rescheduled:
    """What :func:`recompute_timepoints` did, for the audit log and the nurse's summary."""

    changed: list[Assessment] = field(default_factory=list)  # recomputed, cancelled or created
    before: dict[str, object] = field(default_factory=dict)  # time point -> status, due date
    after: dict[str, object] = field(default_factory=dict)

    @property
    def cancelled(self) -> list[Assessment]:
        return [a for a in self.changed if a.status == AssessmentStatus.CANCELLED.value]

    @property
    def moved(self) -> list[Assessment]:
        return [a for a in self.changed if a.status != AssessmentStatus.CANCELLED.value]


def _snapshot(assessment: Assessment) -> dict[str, str]:
    return {"status": assessment.status, "due_date": assessment.due_date.isoformat()}


def recompute_timepoints(
    session: Session,
    *,
    now: datetime,
    schedule: Schedule,
    vault: Vault,
    patient: Patient,
    anchor: str,
    why: str,
) -> Rescheduled:
    """Recompute the time points anchored on ``anchor`` from the patient's (new) anchor date.

    The caller has already set ``patient.inclusion_date`` / ``patient.surgery_date``. Follows
    the rules in the module docstring: unstarted time points move (or are cancelled when the
    surgery date is removed), started and completed ones stay, pending messages of moved time
    points are cancelled (``why`` is recorded on them), and time points of a newly known anchor
    date are created. Used for surgery date changes and inclusion date corrections alike.
    """
    anchor_date = anchor_dates(patient)[anchor]
    today = local_today(patient.site, now)
    result = Rescheduled()

    for assessment in list(patient.assessments):
        if assessment.anchor != anchor:
            continue
        started = assessment.status in OPEN_STATES and _has_answers(assessment)
        if assessment.status in ANSWERED:
            _review(assessment, schedule, anchor_date, result)
            continue  # completed or partial: never re-issued, flagged when now out of window
        if not started and (assessment.status not in UNSTARTED or _has_answers(assessment)):
            continue
        old = (assessment.status, assessment.due_date)
        if started:
            if anchor_date is None:
                continue  # surgery date removed: what was answered stays, the window too
            try:
                timepoint = schedule.timepoint(assessment.timepoint)
            except KeyError:
                continue
            # Started: the window follows the anchor and the answers are kept. Past the new
            # closing day the link takes no more answers, and the scheduler's next pass closes
            # it as partial and scores it (answers are never dropped).
            window = timepoint.window_for(anchor_date)
            moved = (window.due, window.opens, window.closes) != (
                assessment.due_date,
                assessment.window_opens,
                assessment.window_closes,
            )
            if moved:
                assessment.due_date = window.due
                assessment.window_opens = window.opens
                assessment.window_closes = window.closes
                assessment.updated_at = now
                result.changed.append(assessment)
                result.before[assessment.timepoint] = {
                    "status": old[0],
                    "due_date": old[1].isoformat(),
                }
                result.after[assessment.timepoint] = _snapshot(assessment)
            continue
        if anchor_date is None:
            if assessment.status == AssessmentStatus.CANCELLED.value:
                continue
            assessment.status = AssessmentStatus.CANCELLED.value
            assessment.closed_at = now
            close_link(assessment)
        else:
            try:
                timepoint = schedule.timepoint(assessment.timepoint)
            except KeyError:
                continue  # no longer in the schedule file: left as it is
            window = timepoint.window_for(anchor_date)
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
            result.changed.append(assessment)
            result.before[assessment.timepoint] = {
                "status": old[0],
                "due_date": old[1].isoformat(),
            }
            result.after[assessment.timepoint] = _snapshot(assessment)
    if anchor_date is not None:
        _bound_late_starts(
            patient, schedule, anchor=anchor, anchor_date=anchor_date, now=now, result=result
        )
    cancel_pending_messages(
        session, now=now, assessment_ids=[a.id for a in result.changed], reason=why
    )
    after_reschedule(session, now=now, schedule=schedule, assessments=result.changed)

    if anchor_date is not None:
        for created in create_assessments(session, now=now, patient=patient, schedule=schedule):
            result.changed.append(created)
            result.after[created.timepoint] = _snapshot(created)
    session.flush()
    return result


def _bound_late_starts(
    patient: Patient,
    schedule: Schedule,
    *,
    anchor: str,
    anchor_date: date,
    now: datetime,
    result: Rescheduled,
) -> None:
    """A time point opened late (``late_start``) ends at the latest on its bound: when the
    bound's anchor is set or moves (a surgery date entered after a late baseline opened), a
    late window reaching past the new bound is shortened to it."""
    anchors = anchor_dates(patient)
    for assessment in patient.assessments:
        if assessment.status not in (AssessmentStatus.SCHEDULED.value, *OPEN_STATES):
            continue
        try:
            timepoint = schedule.timepoint(assessment.timepoint)
        except KeyError:
            continue
        own_anchor = anchors.get(timepoint.anchor)
        if timepoint.late_start is None or timepoint.late_start[0] != anchor or own_anchor is None:
            continue
        if assessment.window_closes == timepoint.window_for(own_anchor).closes:
            continue  # its normal window, not a late one
        bound = anchor_date + timedelta(days=timepoint.late_start[1])
        if bound >= assessment.window_closes or bound < assessment.due_date:
            continue
        result.before.setdefault(assessment.timepoint, _snapshot(assessment))
        assessment.window_closes = bound
        assessment.updated_at = now
        result.changed.append(assessment)
        result.after[assessment.timepoint] = {
            **_snapshot(assessment),
            "window_closes": bound.isoformat(),
        }


#: Time points whose answers are in: never re-issued when their anchor moves.
ANSWERED = (AssessmentStatus.COMPLETED.value, AssessmentStatus.PARTIAL.value)
OUTSIDE_WINDOW = "outside_window"


def _review(
    assessment: Assessment, schedule: Schedule, anchor_date: date | None, result: Rescheduled
) -> None:
    """Flag an answered time point whose answers fall outside the window its anchor now gives
    (or clear the flag when a later move puts them back inside). The answers, status and stored
    window stay as they were; the nurse reviews, the export carries the flag."""
    answered_at = assessment.completed_at or assessment.started_at
    if anchor_date is None or answered_at is None:
        return
    try:
        window = schedule.timepoint(assessment.timepoint).window_for(anchor_date)
    except KeyError:
        return
    day = answered_at.astimezone(ZoneInfo(assessment.patient.site.time_zone)).date()
    flag = None if window.opens <= day <= window.closes else OUTSIDE_WINDOW
    if flag != assessment.review_flag:
        result.before[assessment.timepoint] = {"review_flag": assessment.review_flag}
        assessment.review_flag = flag
        result.after[assessment.timepoint] = {
            "review_flag": flag,
            "answered_on": day.isoformat(),
            "new_window": f"{window.opens.isoformat()}/{window.closes.isoformat()}",
        }


def check_surgery_date(inclusion_date: date, surgery_date: date) -> None:
    """The surgery date must lie between inclusion and three years after it."""
    if surgery_date < inclusion_date:
        raise ScheduleChangeError(
            "surgery_date", N_("The surgery date is before the inclusion date.")
        )
    if surgery_date > inclusion_date + MAX_SURGERY_AFTER_INCLUSION:
        raise ScheduleChangeError(
            "surgery_date", N_("The surgery date is more than three years after inclusion.")
        )


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
    """Set, move or remove the surgery date; returns the time points that changed.

    A change or a removal needs a reason; the first surgery date entered does not (it corrects
    nothing), though a reason given is recorded.
    """
    given_reason = require_reason(reason) if patient.surgery_date is not None else reason.strip()
    if patient.status != PatientStatus.ACTIVE.value:
        raise ScheduleChangeError(
            "surgery_date",
            N_("The patient is no longer active in the study (%(status)s)."),
            status=patient.status,
        )
    if new_date is not None:
        check_surgery_date(patient.inclusion_date, new_date)
    old_date = patient.surgery_date
    if old_date == new_date:
        return []

    patient.surgery_date = new_date
    patient.updated_at = now
    result = recompute_timepoints(
        session,
        now=now,
        schedule=schedule,
        vault=vault,
        patient=patient,
        anchor="surgery",
        why="surgery date changed",
    )
    record(
        session,
        now=now,
        actor=actor,
        action="patient.surgery_date_changed",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before={"surgery_date": old_date, **result.before},
        after={"surgery_date": new_date, **result.after},
        reason=given_reason or None,
    )
    return result.changed


def end_participation(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    patient: Patient,
    status: str,
    reason: str,
    registry: InstrumentRegistry,
) -> list[Assessment]:
    """Withdrawal, death or "not operated": cancel every time point not yet answered; one the
    patient had started closes as partial and is scored by the half rule (nothing a patient
    answered is dropped). Returns the cancelled ones."""
    reason = require_reason(reason)
    if status not in LEAVING_STATUSES:
        raise ScheduleChangeError(
            "status",
            N_("The status must be one of %(choices)s."),
            choices=", ".join(LEAVING_STATUSES),
        )
    if patient.status != PatientStatus.ACTIVE.value:
        raise ScheduleChangeError(
            "status", N_("The patient's status is already: %(status)s."), status=patient.status
        )
    old_status = patient.status
    patient.status = status
    patient.updated_at = now
    cancelled: list[Assessment] = []
    kept: list[Assessment] = []
    for assessment in patient.assessments:
        if assessment.status in (
            AssessmentStatus.SCHEDULED.value,
            AssessmentStatus.OPEN.value,
            AssessmentStatus.IN_PROGRESS.value,
        ):
            started = _has_answers(assessment)
            assessment.status = (
                AssessmentStatus.PARTIAL.value if started else AssessmentStatus.CANCELLED.value
            )
            assessment.closed_at = now
            assessment.updated_at = now
            close_link(assessment)
            (kept if started else cancelled).append(assessment)
    cancel_pending_messages(
        session, now=now, patient_id=patient.id, reason=f"patient {status.replace('_', ' ')}"
    )
    session.flush()
    for assessment in kept:
        score_partial(session, now=now, assessment=assessment, registry=registry)
    record(
        session,
        now=now,
        actor=actor,
        action=f"patient.{status}",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before={"status": old_status},
        after={
            "status": status,
            "cancelled_timepoints": [a.timepoint for a in cancelled],
            "partial_timepoints": [a.timepoint for a in kept],
        },
        reason=reason,
    )
    return cancelled


def correct_status(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    schedule: Schedule,
    vault: Vault,
    patient: Patient,
    reason: str,
) -> list[Assessment]:
    """Undo a status recorded by mistake (withdrawn, deceased, not operated or follow-up
    complete): the patient is active again and the schedule is rebuilt. A cancelled time point
    whose window has passed becomes missed (it was expected after all), one whose window is open
    opens with a new link and invitation, a later one is scheduled; answered ones stay as they
    are. Needs a reason; audited before/after. Returns the rebuilt time points."""
    reason = require_reason(reason)
    if patient.status == PatientStatus.ACTIVE.value:
        raise ScheduleChangeError(
            "status", N_("The patient's status is already: %(status)s."), status=patient.status
        )
    old_status = patient.status
    patient.status = PatientStatus.ACTIVE.value
    patient.updated_at = now
    today = local_today(patient.site, now)
    rebuilt: list[Assessment] = []
    for assessment in patient.assessments:
        if assessment.status != AssessmentStatus.CANCELLED.value or _has_answers(assessment):
            continue
        if assessment.window_closes < today:
            assessment.status = AssessmentStatus.EXPIRED.value
            assessment.closed_at = now
        elif assessment.window_opens <= today:
            assessment.status = AssessmentStatus.OPEN.value
            assessment.opened_at = now
            assessment.closed_at = None
            issue_token(assessment, vault)
        else:
            assessment.status = AssessmentStatus.SCHEDULED.value
            assessment.closed_at = None
            assessment.token_hash = None
        assessment.updated_at = now
        rebuilt.append(assessment)
    after_reschedule(session, now=now, schedule=schedule, assessments=rebuilt)
    created = create_assessments(session, now=now, patient=patient, schedule=schedule)
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action="patient.status_corrected",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before={"status": old_status},
        after={
            "status": patient.status,
            **{a.timepoint: a.status for a in [*rebuilt, *created]},
        },
        reason=reason,
    )
    return [*rebuilt, *created]
