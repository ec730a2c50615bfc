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
    PatientAnchorDate,
    PatientStatus,
    WithdrawalKind,
)
from ..scheduling.assessments import (
    OPEN_STATES,
    anchor_dates,
    close_link,
    create_assessments,
    issue_token,
    local_today,
)
from ..scheduling.schedule import Schedule, TimePoint, Window

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
        #: A value may be a label in every language ({"sv": ..., "en": ...}): the page shows its
        #: own language's (:func:`params_in`).
        self.params = params
        super().__init__(f"{field}: {message % params_in(params, 'en') if params else message}")


def params_in(params: dict[str, object], language: str) -> dict[str, object]:
    """An error's ``params`` with every label in ``language`` (else English)."""
    return {
        k: (v.get(language) or v.get("en", "")) if isinstance(v, dict) else v
        for k, v in params.items()
    }


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

    The caller has already set the new date (:func:`set_anchor_date`). Follows the rules in the
    module docstring: unstarted time points move (or are cancelled when the date is removed),
    started ones move keeping their answers, completed ones stay, pending messages of moved time
    points are cancelled (``why`` is recorded on them), and time points of a newly known anchor
    date are created. Used for every anchor: surgery, inclusion, and the schedule's own.
    """
    anchors = anchor_dates(patient)
    anchor_date = anchors.get(anchor)
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
            window = _started_window(timepoint, timepoint.window_for(anchor_date), anchors)
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
            normal = timepoint.window_for(anchor_date)
            bounded = timepoint.bounded(normal, anchors)
            _settle(assessment, normal, bounded, today=today, now=now, vault=vault)
        assessment.updated_at = now
        if (assessment.status, assessment.due_date) != old:
            result.changed.append(assessment)
            result.before[assessment.timepoint] = {
                "status": old[0],
                "due_date": old[1].isoformat(),
            }
            result.after[assessment.timepoint] = _snapshot(assessment)
    _apply_bounds(
        patient, schedule, anchor=anchor, today=today, now=now, vault=vault, result=result
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


def _settle(
    assessment: Assessment,
    normal: Window,
    window: Window | None,
    *,
    today: date,
    now: datetime,
    vault: Vault,
) -> None:
    """Give a time point not started its (new) window and the status that goes with it today:
    missed when it has passed, open (with a new link unless it had one) when it is open,
    scheduled when it lies ahead; not expected (cancelled) when its bound falls before it opens
    (``window`` None; it keeps its ``normal`` dates)."""
    if window is None:
        assessment.due_date, assessment.window_opens = normal.due, normal.opens
        assessment.window_closes = normal.closes
        if assessment.status != AssessmentStatus.CANCELLED.value:
            assessment.status = AssessmentStatus.CANCELLED.value
            assessment.closed_at = now
            close_link(assessment)
        return
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


def _started_window(
    timepoint: TimePoint, window: Window, anchors: dict[str, date | None]
) -> Window:
    """A started time point's window cut at its bound; when the bound falls before it opens,
    a window of its opening day alone (the scheduler's next pass closes it as partial)."""
    bounded = timepoint.bounded(window, anchors)
    if bounded is not None:
        return bounded
    return Window(due=window.opens, opens=window.opens, closes=window.opens)


def _apply_bounds(
    patient: Patient,
    schedule: Schedule,
    *,
    anchor: str,
    today: date,
    now: datetime,
    vault: Vault,
    result: Rescheduled,
) -> None:
    """Time points counted from another anchor but bounded by this one (baseline: until the
    day before surgery; ``bound``, or a late start's ``late_start``) when this anchor's date is
    set, moved or removed: a window reaching past the new bound is cut to it, one cut before
    grows back (to its normal or late length) when the bound moves later, one whose bound now
    falls before it opens is not expected (cancelled), and such a one comes back when the bound
    moves away. Started ones keep their answers; the scheduler closes them as partial once
    their window has passed."""
    if patient.status != PatientStatus.ACTIVE.value:
        return
    anchors = anchor_dates(patient)
    for assessment in patient.assessments:
        try:
            timepoint = schedule.timepoint(assessment.timepoint)
        except KeyError:
            continue
        if timepoint.anchor == anchor:
            continue  # recomputed from its own anchor already
        bounds = {timepoint.bound[0] if timepoint.bound else None}
        bounds.add(timepoint.late_start[0] if timepoint.late_start else None)
        own = anchors.get(timepoint.anchor)
        if anchor not in bounds or own is None:
            continue
        started = _has_answers(assessment)
        cancelled = assessment.status == AssessmentStatus.CANCELLED.value
        if not (
            assessment.status in (AssessmentStatus.SCHEDULED.value, *OPEN_STATES)
            or (cancelled and not started)
        ):
            continue
        normal = timepoint.window_for(own)
        base = normal
        if assessment.window_opens != normal.opens:  # opened late (late_start)
            span = timedelta(days=timepoint.closes_days - timepoint.opens_days)
            closes = assessment.window_opens + span
            if timepoint.late_start is not None and anchors.get(timepoint.late_start[0]):
                late_anchor = anchors[timepoint.late_start[0]]
                assert late_anchor is not None
                closes = min(closes, late_anchor + timedelta(days=timepoint.late_start[1]))
            if closes < assessment.window_opens:
                continue
            base = Window(due=assessment.window_opens, opens=assessment.window_opens, closes=closes)
        before = (assessment.status, assessment.due_date, assessment.window_closes)
        if started:
            window = _started_window(timepoint, base, anchors)
            assessment.due_date, assessment.window_closes = window.due, window.closes
        else:
            bounded = timepoint.bounded(base, anchors)
            _settle(assessment, base, bounded, today=today, now=now, vault=vault)
        if (assessment.status, assessment.due_date, assessment.window_closes) == before:
            continue
        assessment.updated_at = now
        result.before.setdefault(
            assessment.timepoint, {"status": before[0], "due_date": before[1].isoformat()}
        )
        result.changed.append(assessment)
        result.after[assessment.timepoint] = {
            **_snapshot(assessment),
            "window_closes": assessment.window_closes.isoformat(),
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


def check_anchor_date(
    schedule: Schedule,
    dates: dict[str, date | None],
    anchor: str,
    *,
    today: date,
    field: str,
) -> None:
    """Check a new date of ``anchor`` (already in ``dates``, the patient's anchor dates) against
    the schedule's rules that involve it: not before another anchor (surgery not before
    inclusion), not more than so many days after it, not in the future (a decision taken). A
    rule broken names ``field``, the form field of the date being changed."""
    new = dates.get(anchor)
    if new is None:
        return
    declared = schedule.anchors.get(anchor)
    if declared is not None:
        if declared.past_only and new > today:
            raise ScheduleChangeError(
                field, N_("The date of “%(anchor)s” is in the future."), anchor=declared.label
            )
        other = None if declared.not_before is None else dates.get(declared.not_before)
        if other is not None and declared.not_before is not None:
            _check_pair(schedule, anchor, new, declared.not_before, other, field=field)
    for later in schedule.anchors.values():  # anchors that may not come before this one
        later_date = dates.get(later.key)
        if later.not_before == anchor and later_date is not None:
            _check_pair(schedule, later.key, later_date, anchor, new, field=field)


def _check_pair(
    schedule: Schedule,
    later: str,
    later_date: date,
    earlier: str,
    earlier_date: date,
    *,
    field: str,
) -> None:
    """``later`` (whose rule names ``earlier`` as not_before) on ``later_date``: not before
    ``earlier_date``, nor more than its ``within_days`` after it."""
    labels = {"anchor": schedule.anchors[later].label, "other": schedule.anchors[earlier].label}
    if later_date < earlier_date:
        if (later, earlier) == ("surgery", "inclusion"):
            raise ScheduleChangeError(field, N_("The surgery date is before the inclusion date."))
        raise ScheduleChangeError(
            field,
            N_(
                "The date of “%(anchor)s” (%(date)s) is before the date of “%(other)s” "
                "(%(other_date)s)."
            ),
            date=later_date.isoformat(),
            other_date=earlier_date.isoformat(),
            **labels,
        )
    within = schedule.anchors[later].within_days
    if within is not None and later_date > earlier_date + timedelta(days=within):
        raise ScheduleChangeError(
            field,
            N_("The date of “%(anchor)s” is more than %(days)s days after “%(other)s”."),
            days=within,
            **labels,
        )


def set_anchor_date(
    patient: Patient, anchor: str, day: date | None, *, now: datetime, by: str | None
) -> None:
    """Store a patient's date of ``anchor``: the inclusion or surgery column, or the recorded
    date of one of the schedule's own anchors (None removes it)."""
    if anchor == "inclusion":
        if day is None:
            raise ValueError("the inclusion date cannot be removed")
        patient.inclusion_date = day
        return
    if anchor == "surgery":
        patient.surgery_date = day
        return
    row = next((r for r in patient.recorded_anchors if r.anchor == anchor), None)
    if day is None:
        if row is not None:
            patient.recorded_anchors.remove(row)
    elif row is None:
        patient.recorded_anchors.append(
            PatientAnchorDate(anchor=anchor, day=day, recorded_at=now, recorded_by=by)
        )
    else:
        row.day, row.recorded_at, row.recorded_by = day, now, by


def change_anchor_date(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    schedule: Schedule,
    vault: Vault,
    patient: Patient,
    anchor: str,
    new_date: date | None,
    reason: str,
    field: str = "day",
) -> list[Assessment]:
    """Set, move or remove the date of an anchor (surgery, or one of the schedule's own); the
    time points counted from it follow (:func:`recompute_timepoints`). Returns those that
    changed.

    A change or a removal needs a reason; the first date entered does not (it corrects nothing),
    though a reason given is recorded. The date of a follow-up track's anchor (the decision not
    to operate) is recorded with its status and may only be corrected, not removed, while the
    patient has that status; any other anchor only while the patient is active. A date that
    contradicts another (surgery before inclusion, a decision in the future) is refused and
    nothing changes. Audited before/after with every time point that moved.
    """
    declared = schedule.anchors.get(anchor)
    if declared is None or anchor == "inclusion":
        raise ScheduleChangeError(field, N_("Unknown date: %(anchor)s."), anchor=anchor)
    old_date = anchor_dates(patient).get(anchor)
    given_reason = require_reason(reason) if old_date is not None else reason.strip()
    track_status = next((t.status for t in schedule.tracks.values() if t.anchor == anchor), None)
    if track_status is not None:
        if patient.status != track_status:
            raise ScheduleChangeError(
                field,
                N_("This date is recorded with the status “%(status)s”, on the status page."),
                status=track_status,
            )
        if new_date is None:
            raise ScheduleChangeError(
                field, N_("This date is required while the patient has this status.")
            )
    elif patient.status != PatientStatus.ACTIVE.value:
        raise ScheduleChangeError(
            field,
            N_("The patient is no longer active in the study (%(status)s)."),
            status=patient.status,
        )
    if old_date == new_date:
        return []
    dates = {**anchor_dates(patient), anchor: new_date}
    check_anchor_date(schedule, dates, anchor, today=local_today(patient.site, now), field=field)

    set_anchor_date(patient, anchor, new_date, now=now, by=actor.id)
    patient.updated_at = now
    session.flush()
    result = recompute_timepoints(
        session,
        now=now,
        schedule=schedule,
        vault=vault,
        patient=patient,
        anchor=anchor,
        why=f"{anchor.replace('_', ' ')} date changed",
    )
    before: dict[str, object]
    after: dict[str, object]
    if anchor == "surgery":
        action, before, after = (
            "patient.surgery_date_changed",
            {"surgery_date": old_date},
            {"surgery_date": new_date},
        )
    else:
        action = "patient.anchor_date_changed"
        before, after = {"anchor": anchor, "date": old_date}, {"anchor": anchor, "date": new_date}
    record(
        session,
        now=now,
        actor=actor,
        action=action,
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before={**before, **result.before},
        after={**after, **result.after},
        reason=given_reason or None,
    )
    return result.changed


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
    """Set, move or remove the surgery date (:func:`change_anchor_date`)."""
    return change_anchor_date(
        session,
        now=now,
        actor=actor,
        schedule=schedule,
        vault=vault,
        patient=patient,
        anchor="surgery",
        new_date=new_date,
        reason=reason,
        field="surgery_date",
    )


def end_participation(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    schedule: Schedule,
    vault: Vault,
    patient: Patient,
    status: str,
    status_date: date | None,
    reason: str,
    registry: InstrumentRegistry,
    withdrawal_kind: str | None = None,
) -> list[Assessment]:
    """Withdrawal, death or "not operated", on ``status_date`` (the date of death, of the
    withdrawal, of the decision not to operate; not in the future, not before inclusion), with
    a reason; a withdrawal also records its kind (from the questionnaires only, or from the
    study). Every time point not yet answered is cancelled and its messages with it (death stops
    every message at once); one the patient had started closes as partial and is scored by the
    half rule (nothing a patient answered is dropped).

    When the schedule gives the status a follow-up track (ScanPan: not operated -> 3, 6 and 12
    months after the decision), ``status_date`` is recorded as the track's anchor and its time
    points are created: the patient keeps getting questionnaires. Returns the cancelled ones.
    """
    reason = require_reason(reason)
    withdrawal_kind = check_leaving(
        schedule, patient, status, status_date, withdrawal_kind, now=now
    )
    old_status = patient.status
    patient.status = status
    patient.status_date = status_date
    patient.withdrawal_kind = withdrawal_kind
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
    follow_up: list[Assessment] = []
    track_anchor = schedule.track_anchor(status)
    if track_anchor is not None:
        set_anchor_date(patient, track_anchor.key, status_date, now=now, by=actor.id)
        session.flush()
        follow_up = _create_follow_up(
            session, now=now, schedule=schedule, vault=vault, patient=patient
        )
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
            "status_date": status_date,
            **({"withdrawal_kind": withdrawal_kind} if withdrawal_kind else {}),
            "cancelled_timepoints": [a.timepoint for a in cancelled],
            "partial_timepoints": [a.timepoint for a in kept],
            **(
                {"follow_up_timepoints": {a.timepoint: a.due_date.isoformat() for a in follow_up}}
                if follow_up
                else {}
            ),
        },
        reason=reason,
    )
    return cancelled


def check_leaving(
    schedule: Schedule,
    patient: Patient,
    status: str,
    status_date: date | None,
    withdrawal_kind: str | None,
    *,
    now: datetime,
) -> str | None:
    """Check a leaving status before anything changes (the status page asks for confirmation
    only once these hold); returns the withdrawal kind to record (None but for a withdrawal)."""
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
    _check_status_date(schedule, patient, status, status_date, now=now)
    if status != PatientStatus.WITHDRAWN.value:
        return None
    if withdrawal_kind not in {kind.value for kind in WithdrawalKind}:
        raise ScheduleChangeError(
            "withdrawal_kind",
            N_("Say what the patient withdraws from: the questionnaires or the study."),
        )
    return withdrawal_kind


def follow_up_outlook(
    schedule: Schedule, status: str, status_date: date
) -> list[tuple[TimePoint, Window]]:
    """The follow-up track's time points a patient gets with ``status`` recorded on
    ``status_date`` (none without a track), with their windows: for the confirmation page."""
    return [(tp, tp.window_for(status_date)) for tp in schedule.timepoints_for(status)]


def _check_status_date(
    schedule: Schedule, patient: Patient, status: str, status_date: date | None, *, now: datetime
) -> None:
    """The date a status took effect: given, not in the future, not before inclusion (and, for
    a track's anchor, its own rules)."""
    if status_date is None:
        raise ScheduleChangeError("status_date", N_("Give the date the status took effect."))
    if status_date > local_today(patient.site, now):
        raise ScheduleChangeError("status_date", N_("The date is in the future."))
    if status_date < patient.inclusion_date:
        raise ScheduleChangeError(
            "status_date",
            N_("The date is before the inclusion date (%(inclusion)s)."),
            inclusion=patient.inclusion_date.isoformat(),
        )
    track_anchor = schedule.track_anchor(status)
    if track_anchor is not None:
        dates = {**anchor_dates(patient), track_anchor.key: status_date}
        today = local_today(patient.site, now)
        check_anchor_date(schedule, dates, track_anchor.key, today=today, field="status_date")


def _create_follow_up(
    session: Session, *, now: datetime, schedule: Schedule, vault: Vault, patient: Patient
) -> list[Assessment]:
    """Create the follow-up track's time points of the patient's (new) status and settle those
    whose window is open or over already (a decision recorded late): open with a link and an
    invitation, or missed."""
    created = create_assessments(session, now=now, patient=patient, schedule=schedule)
    today = local_today(patient.site, now)
    for assessment in created:
        if assessment.window_closes < today:
            assessment.status = AssessmentStatus.EXPIRED.value
            assessment.closed_at = now
        elif assessment.window_opens <= today:
            assessment.status = AssessmentStatus.OPEN.value
            assessment.opened_at = now
            issue_token(assessment, vault)
    session.flush()
    return created


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
    are. A follow-up track the status had begun is withdrawn: its unanswered time points are no
    longer expected (cancelled) and its anchor date goes. Needs a reason; audited before/after.
    Returns the time points that changed."""
    reason = require_reason(reason)
    if patient.status == PatientStatus.ACTIVE.value:
        raise ScheduleChangeError(
            "status", N_("The patient's status is already: %(status)s."), status=patient.status
        )
    old_status, old_date = patient.status, patient.status_date
    patient.status = PatientStatus.ACTIVE.value
    patient.status_date = None
    patient.withdrawal_kind = None
    patient.updated_at = now
    today = local_today(patient.site, now)
    # A follow-up track the status had started (not operated): its time points not answered are
    # no longer expected, its anchor date goes; what the patient answered stays.
    withdrawn_track: list[Assessment] = []
    track_anchor = schedule.track_anchor(old_status)
    if track_anchor is not None:
        set_anchor_date(patient, track_anchor.key, None, now=now, by=actor.id)
        track_keys = set(schedule.tracks[old_status].timepoints)
        for assessment in patient.assessments:
            if assessment.timepoint in track_keys and assessment.status in (
                *UNSTARTED,
                *OPEN_STATES,
            ):
                if _has_answers(assessment):
                    continue
                assessment.status = AssessmentStatus.CANCELLED.value
                assessment.closed_at = now
                assessment.updated_at = now
                close_link(assessment)
                withdrawn_track.append(assessment)
        cancel_pending_messages(
            session,
            now=now,
            assessment_ids=[a.id for a in withdrawn_track],
            reason="status corrected",
        )
    any_track = {tp.key for tp in schedule.timepoints if tp.track is not None}
    anchors = anchor_dates(patient)
    rebuilt: list[Assessment] = []
    for assessment in patient.assessments:
        if assessment.status != AssessmentStatus.CANCELLED.value or _has_answers(assessment):
            continue
        if assessment.timepoint in any_track:
            continue  # a follow-up track's: not expected of an active patient
        stored = Window(assessment.due_date, assessment.window_opens, assessment.window_closes)
        try:
            window = schedule.timepoint(assessment.timepoint).bounded(stored, anchors)
        except KeyError:
            window = stored  # no longer in the schedule file: its stored window
        if window is None:
            continue  # still not expected: its bound falls before it opens
        _settle(assessment, stored, window, today=today, now=now, vault=vault)
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
        before={"status": old_status, "status_date": old_date},
        after={
            "status": patient.status,
            **{a.timepoint: a.status for a in [*withdrawn_track, *rebuilt, *created]},
        },
        reason=reason,
    )
    return [*withdrawn_track, *rebuilt, *created]
