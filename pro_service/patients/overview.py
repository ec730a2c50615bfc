"""What the patient page shows: the time line, its messages, score series and one time point's
answers. Read-only; plain dataclasses for the templates.

The number of queries is fixed (assessments, messages and scores are each read in one query),
whatever the number of time points or messages. Phone numbers and message bodies are never read.

Days are counted from the surgery date, or from the inclusion date when the surgery date is not
known (``reference``). A completed time point is placed on the local day of its completion (as in
the exports), any other on its due date.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..instruments import Instrument, InstrumentRegistry
from ..models import (
    Assessment,
    AssessmentStatus,
    AuditEvent,
    OutboxMessage,
    Patient,
    Response,
    Score,
)
from ..scheduling.assessments import display_status, local_today
from ..scheduling.schedule import Schedule

#: The scales drawn on the patient page, in page order.
CHART_SCALES = ("QL2", "PF2", "FA", "PA", "C30_SUMMARY", "PAN_PP")

#: A change from baseline of at least this many points (in the worse direction) is marked.
WORSENING_THRESHOLD = 10.0
# Scores are floats (e.g. 100/3 steps); a change that is 10 on paper must not be missed as 9.99...
_TOLERANCE = 1e-9

Reference = Literal["surgery", "inclusion"]


@dataclass(frozen=True)
class MessageLine:
    id: int
    kind: str
    scheduled_for: datetime
    sent_at: datetime | None
    status: str
    provider_status: str | None  # the provider's delivery status (e.g. "delivered")
    error_code: str | None


@dataclass(frozen=True)
class ChangeLine:
    """One change to a time point, from the audit trail, for its timeline on the patient page.

    ``kind``: rescheduled (its anchor date moved), flagged / unflagged (answers outside the new
    window), cancelled, closed_partial, rebuilt (after a status correction), not_expected (a
    follow-up track's time point after a status correction), follow_up (created by a status
    with a follow-up track), missing_reason, entered, entry_corrected.
    """

    at: datetime
    kind: str
    reason: str | None = None
    #: What moved, ended or created it: surgery_date, inclusion_date, an anchor's key (a date
    #: recorded on the patient page), withdrawn, deceased, not_operated.
    cause: str | None = None
    due_before: str | None = None
    due_after: str | None = None
    status_after: str | None = None
    value: str | None = None  # a missing reason's code, an entry's mode


#: Audit actions that change a patient's time points (the patient is the audited object).
_PATIENT_CHANGES = (
    "patient.surgery_date_changed",
    "patient.anchor_date_changed",
    "patient.updated",
    "patient.withdrawn",
    "patient.deceased",
    "patient.not_operated",
    "patient.status_corrected",
)
#: Audit actions on a time point itself.
_ASSESSMENT_CHANGES = {
    "assessment.missing_reason": "missing_reason",
    "assessment.entered": "entered",
    "assessment.entry_corrected": "entry_corrected",
    "assessment.partial": "closed_partial",
}


def _changes(
    session: Session, patient: Patient, assessments: Sequence[Assessment]
) -> dict[str, list[ChangeLine]]:
    """Time point key -> its changes, oldest first (two queries)."""
    by_id = {str(a.id): a.timepoint for a in assessments}
    out: dict[str, list[ChangeLine]] = defaultdict(list)
    events = session.scalars(
        select(AuditEvent)
        .where(
            or_(
                and_(
                    AuditEvent.object_type == "patient",
                    AuditEvent.object_id == str(patient.id),
                    AuditEvent.action.in_(_PATIENT_CHANGES),
                ),
                and_(
                    AuditEvent.object_type == "assessment",
                    AuditEvent.object_id.in_(list(by_id)),
                    AuditEvent.action.in_(list(_ASSESSMENT_CHANGES)),
                ),
            )
        )
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    for event in events:
        after = event.after or {}
        before = event.before or {}
        if event.object_type == "assessment":
            key = by_id[event.object_id or ""]
            value = after.get("missing_reason") or after.get("mode")
            out[key].append(
                ChangeLine(event.at, _ASSESSMENT_CHANGES[event.action], event.reason, value=value)
            )
            continue
        action = event.action.removeprefix("patient.")
        if action in ("withdrawn", "deceased", "not_operated"):
            for key in after.get("cancelled_timepoints", []):
                out[key].append(ChangeLine(event.at, "cancelled", event.reason, cause=action))
            for key in after.get("partial_timepoints", []):
                out[key].append(ChangeLine(event.at, "closed_partial", event.reason, cause=action))
            for key, due in after.get("follow_up_timepoints", {}).items():
                out[key].append(
                    ChangeLine(event.at, "follow_up", event.reason, cause=action, due_after=due)
                )
            continue
        cause = {
            "surgery_date_changed": "surgery_date",
            "anchor_date_changed": str(after.get("anchor")),
        }.get(action, "inclusion_date")
        for key in by_id.values():
            new = after.get(key)
            if action == "status_corrected":
                if new == AssessmentStatus.CANCELLED.value:
                    out[key].append(ChangeLine(event.at, "not_expected", event.reason))
                elif isinstance(new, str):
                    out[key].append(ChangeLine(event.at, "rebuilt", event.reason, status_after=new))
                continue
            if not isinstance(new, dict):
                continue
            previous = before.get(key)
            old: dict[str, Any] = previous if isinstance(previous, dict) else {}
            if "review_flag" in new:
                kind = "flagged" if new["review_flag"] else "unflagged"
                out[key].append(ChangeLine(event.at, kind, event.reason, cause=cause))
            elif "due_date" in new:
                out[key].append(
                    ChangeLine(
                        event.at,
                        "rescheduled",
                        event.reason,
                        cause=cause,
                        due_before=old.get("due_date"),
                        due_after=new.get("due_date"),
                        status_after=new.get("status"),
                    )
                )
    return out


@dataclass(frozen=True)
class TimePointLine:
    assessment_id: int
    key: str
    label: str
    anchor: str
    due_date: date
    window_opens: date
    window_closes: date
    status: str  # scheduling.assessments.display_status
    completed_at: datetime | None
    day: int | None  # days from the reference date (completion day, else due date)
    has_answers: bool  # completed or in progress: its answers can be shown
    messages: tuple[MessageLine, ...]
    review_flag: str | None = None  # answers outside the window a moved date gives it
    changes: tuple[ChangeLine, ...] = ()  # from the audit trail, oldest first


@dataclass(frozen=True)
class ScorePoint:
    assessment_id: int
    timepoint: str
    label: str
    day: int
    value: float
    change: float | None  # from baseline; None without a baseline score
    worsened: bool
    is_baseline: bool


@dataclass(frozen=True)
class ScoreSeries:
    scale: str
    name: str
    higher_is_better: bool
    baseline: float | None
    points: tuple[ScorePoint, ...]


@dataclass(frozen=True)
class PatientOverview:
    patient: Patient
    today: date  # in the site's time zone
    reference: Reference
    reference_date: date
    baseline_timepoint: str | None
    baseline_label: str | None
    timepoints: tuple[TimePointLine, ...]
    other_messages: tuple[MessageLine, ...]  # not tied to a time point
    series: tuple[ScoreSeries, ...]


# --- Scales ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleInfo:
    code: str
    name: str
    higher_is_better: bool


def _text(text: Mapping[str, str], lang: str) -> str:
    """``text`` in ``lang``, else in the first language it has."""
    return text.get(lang) or next(iter(text.values()))


def scale_info(registry: InstrumentRegistry, code: str, lang: str) -> ScaleInfo | None:
    """Name and direction of a score, from the instrument data (latest version defining it).

    Symptom scales: higher is worse. Functional and global scales: higher is better. A summary
    score averages functional scales with reversed (100 - score) symptom scales, so higher is
    better.
    """
    for instrument in registry.latest():
        for scale in instrument.scales:
            if scale.code == code:
                return ScaleInfo(code, _text(scale.name, lang), scale.type != "symptom")
        for summary in instrument.summary_scores:
            if summary.code == code:
                return ScaleInfo(code, _text(summary.name, lang), True)
    return None


def is_worsening(change: float, *, higher_is_better: bool) -> bool:
    """True when ``change`` (score - baseline) is a worsening of at least the threshold."""
    worse_by = -change if higher_is_better else change
    return worse_by >= WORSENING_THRESHOLD - _TOLERANCE


# --- The overview ---------------------------------------------------------------------------


def _label(schedule: Schedule, key: str, lang: str) -> str:
    try:
        return _text(schedule.timepoint(key).label, lang)
    except KeyError:  # a time point no longer in the schedule file keeps its key
        return key


def baseline_key(schedule: Schedule) -> str | None:
    """The baseline time point: the first one in the schedule anchored on inclusion."""
    return next((tp.key for tp in schedule.timepoints if tp.anchor == "inclusion"), None)


def reference_of(patient: Patient) -> tuple[Reference, date]:
    if patient.surgery_date is not None:
        return "surgery", patient.surgery_date
    return "inclusion", patient.inclusion_date


def _message_line(message: OutboxMessage) -> MessageLine:
    return MessageLine(
        id=message.id,
        kind=message.kind,
        scheduled_for=message.scheduled_for,
        sent_at=message.sent_at,
        status=message.status,
        provider_status=message.provider_status,
        error_code=message.error_code,
    )


def build_overview(
    session: Session,
    *,
    now: datetime,
    patient: Patient,
    schedule: Schedule,
    registry: InstrumentRegistry,
    language: str,
    scales: Sequence[str] = CHART_SCALES,
) -> PatientOverview:
    site = patient.site
    zone = ZoneInfo(site.time_zone)
    today = local_today(site, now)
    reference, reference_date = reference_of(patient)

    assessments = list(
        session.scalars(
            select(Assessment)
            .where(Assessment.patient_id == patient.id)
            .order_by(Assessment.due_date, Assessment.id)
        )
    )
    messages_by_assessment: dict[int | None, list[MessageLine]] = defaultdict(list)
    for message in session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.patient_id == patient.id)
        .order_by(OutboxMessage.scheduled_for, OutboxMessage.id)
    ):
        messages_by_assessment[message.assessment_id].append(_message_line(message))

    changes = _changes(session, patient, assessments)
    lines = []
    for a in assessments:
        placed_on = a.completed_at.astimezone(zone).date() if a.completed_at else a.due_date
        lines.append(
            TimePointLine(
                assessment_id=a.id,
                key=a.timepoint,
                label=_label(schedule, a.timepoint, language),
                anchor=a.anchor,
                due_date=a.due_date,
                window_opens=a.window_opens,
                window_closes=a.window_closes,
                status=display_status(a, today),
                completed_at=a.completed_at,
                day=(placed_on - reference_date).days,
                has_answers=a.status
                in (AssessmentStatus.COMPLETED.value, AssessmentStatus.IN_PROGRESS.value),
                messages=tuple(messages_by_assessment.pop(a.id, ())),
                review_flag=a.review_flag,
                changes=tuple(changes.get(a.timepoint, ())),
            )
        )
    other = tuple(m for group in messages_by_assessment.values() for m in group)

    base_key = baseline_key(schedule)
    series = _score_series(
        session,
        assessments=assessments,
        zone=zone,
        reference_date=reference_date,
        baseline_timepoint=base_key,
        schedule=schedule,
        registry=registry,
        language=language,
        scales=scales,
    )
    return PatientOverview(
        patient=patient,
        today=today,
        reference=reference,
        reference_date=reference_date,
        baseline_timepoint=base_key,
        baseline_label=_label(schedule, base_key, language) if base_key else None,
        timepoints=tuple(lines),
        other_messages=tuple(sorted(other, key=lambda m: (m.scheduled_for, m.id))),
        series=series,
    )


def score_series(
    session: Session,
    *,
    patient: Patient,
    schedule: Schedule,
    registry: InstrumentRegistry,
    language: str,
    scales: Sequence[str],
) -> tuple[ScoreSeries, ...]:
    """The score series of ``scales`` alone (for one chart): two queries."""
    assessments = list(
        session.scalars(
            select(Assessment).where(
                Assessment.patient_id == patient.id,
                Assessment.status == AssessmentStatus.COMPLETED.value,
            )
        )
    )
    return _score_series(
        session,
        assessments=assessments,
        zone=ZoneInfo(patient.site.time_zone),
        reference_date=reference_of(patient)[1],
        baseline_timepoint=baseline_key(schedule),
        schedule=schedule,
        registry=registry,
        language=language,
        scales=scales,
    )


def _score_series(
    session: Session,
    *,
    assessments: Sequence[Assessment],
    zone: ZoneInfo,
    reference_date: date,
    baseline_timepoint: str | None,
    schedule: Schedule,
    registry: InstrumentRegistry,
    language: str,
    scales: Sequence[str],
) -> tuple[ScoreSeries, ...]:
    completed = {
        a.id: a
        for a in assessments
        if a.status == AssessmentStatus.COMPLETED.value and a.completed_at is not None
    }
    values: dict[str, dict[int, float]] = defaultdict(dict)
    if completed and scales:
        rows = session.execute(
            select(Score.assessment_id, Score.scale, Score.value).where(
                Score.assessment_id.in_(list(completed)),
                Score.scale.in_(list(scales)),
                Score.value.is_not(None),
            )
        )
        for assessment_id, scale, value in rows:
            if value is not None:
                values[scale][assessment_id] = float(value)

    out = []
    for code in scales:
        info = scale_info(registry, code, language)
        if info is None:
            continue  # not a scale of any loaded instrument
        by_assessment = values.get(code, {})
        baseline = next(
            (
                by_assessment[a.id]
                for a in completed.values()
                if a.timepoint == baseline_timepoint and a.id in by_assessment
            ),
            None,
        )
        points = []
        for a in sorted(completed.values(), key=lambda a: (a.completed_at, a.id)):
            if a.id not in by_assessment:
                continue
            assert a.completed_at is not None
            value = by_assessment[a.id]
            is_baseline = a.timepoint == baseline_timepoint
            change = None if baseline is None else value - baseline
            points.append(
                ScorePoint(
                    assessment_id=a.id,
                    timepoint=a.timepoint,
                    label=_label(schedule, a.timepoint, language),
                    day=(a.completed_at.astimezone(zone).date() - reference_date).days,
                    value=value,
                    change=change,
                    worsened=(
                        change is not None
                        and not is_baseline
                        and is_worsening(change, higher_is_better=info.higher_is_better)
                    ),
                    is_baseline=is_baseline,
                )
            )
        out.append(
            ScoreSeries(
                scale=code,
                name=info.name,
                higher_is_better=info.higher_is_better,
                baseline=baseline,
                points=tuple(points),
            )
        )
    return tuple(out)


# --- One time point's answers and scores ----------------------------------------------------


@dataclass(frozen=True)
class AnswerLine:
    number: int
    text: str | None  # None when the instrument version is not loaded
    code: int | None  # None: not answered
    label: str | None


@dataclass(frozen=True)
class InstrumentAnswers:
    key: str  # "qlq-c30:3.0"
    name: str
    answered_languages: tuple[str, ...]  # codes, in the order the answers were given
    lines: tuple[AnswerLine, ...]


@dataclass(frozen=True)
class ScoreLine:
    scale: str
    name: str
    value: float | None
    items_answered: int
    items_in_scale: int


@dataclass(frozen=True)
class AssessmentDetail:
    assessment: Assessment
    label: str
    status: str
    instruments: tuple[InstrumentAnswers, ...]
    scores: tuple[ScoreLine, ...]


def _resolve(registry: InstrumentRegistry, key: str) -> Instrument | None:
    try:
        return registry.by_key(key)
    except KeyError:
        return None


def _ordered_keys(declared: Iterable[str], answered: Iterable[str]) -> list[str]:
    keys: list[str] = []
    for key in [*declared, *answered]:
        if key not in keys:
            keys.append(key)
    return keys


def assessment_detail(
    session: Session,
    *,
    now: datetime,
    assessment: Assessment,
    schedule: Schedule,
    registry: InstrumentRegistry,
    language: str,
) -> AssessmentDetail:
    """Every item of the time point's instruments with the stored answer, and its scores."""
    responses = list(
        session.scalars(
            select(Response)
            .where(Response.assessment_id == assessment.id)
            .order_by(Response.item_number)
        )
    )
    by_key: dict[str, dict[int, Response]] = defaultdict(dict)
    for response in responses:
        by_key[f"{response.instrument_id}:{response.instrument_version}"][response.item_number] = (
            response
        )

    groups = []
    for key in _ordered_keys(assessment.instruments, by_key):
        answered = by_key.get(key, {})
        instrument = _resolve(registry, key)
        lines = []
        if instrument is None:
            lines = [AnswerLine(n, None, r.code, None) for n, r in sorted(answered.items())]
            name = key
        else:
            name = _text(instrument.name, language)
            for number, item in instrument.items.items():
                stored = answered.get(number)
                code = stored.code if stored is not None else None
                label = None
                if code is not None and code in item.labels:
                    label = _text(item.labels[code], language)
                lines.append(AnswerLine(number, _text(item.text, language), code, label))
        languages = sorted({r.language for r in answered.values()})
        groups.append(
            InstrumentAnswers(
                key=key,
                name=name,
                answered_languages=tuple(languages),
                lines=tuple(lines),
            )
        )

    order = {
        code: i
        for i, code in enumerate(
            c for instrument in registry.latest() for c in instrument.score_codes
        )
    }
    stored_scores = session.scalars(select(Score).where(Score.assessment_id == assessment.id))
    scores = []
    for score in sorted(stored_scores, key=lambda s: (order.get(s.scale, len(order)), s.scale)):
        info = scale_info(registry, score.scale, language)
        scores.append(
            ScoreLine(
                scale=score.scale,
                name=info.name if info else score.scale,
                value=score.value,
                items_answered=score.items_answered,
                items_in_scale=score.items_in_scale,
            )
        )
    return AssessmentDetail(
        assessment=assessment,
        label=_label(schedule, assessment.timepoint, language),
        status=display_status(assessment, local_today(assessment.patient.site, now)),
        instruments=tuple(groups),
        scores=tuple(scores),
    )
