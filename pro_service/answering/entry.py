"""Answers a nurse enters for a patient: from a paper form the patient filled in, or read out in
a telephone interview. The same items and answer options as the patient's own pages; every item
is either answered or marked as left blank, so that a forgotten line cannot pass for a blank one.
The time point is then completed and scored exactly like an electronic one.

Allowed while the time point is open (or started on the phone) and, for a missed or partial one,
until ``late_entry_days`` after its window closed (the schedule file's grace for a form posted
back late). A completed time point is never entered twice; answers entered by staff may be
corrected, with a reason. Audited without the answers themselves (the audit log holds none): the
mode, who, the date on the form, which items were blank or changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..instruments import Instrument, InstrumentRegistry, validate_answers
from ..instruments.scoring import InvalidAnswerError
from ..models import AnswerMode, Assessment, AssessmentStatus, Response
from ..scheduling.assessments import today_in
from ..scheduling.schedule import Schedule
from .responses import instruments_of, save_answers, settle_completed, stored_answers

PAPER = AnswerMode.PAPER.value
TELEPHONE = AnswerMode.TELEPHONE.value
#: The ways of answering a nurse enters (``electronic`` is the patient's own link).
STAFF_MODES = (PAPER, TELEPHONE)

#: A time point takes an entry in these states; missed and partial ones only within the grace.
_ENTERABLE = (
    AssessmentStatus.SCHEDULED.value,  # its window has begun, the scheduler's pass is to come
    AssessmentStatus.OPEN.value,
    AssessmentStatus.IN_PROGRESS.value,
    AssessmentStatus.EXPIRED.value,
    AssessmentStatus.PARTIAL.value,
)
_CLOSED = (AssessmentStatus.EXPIRED.value, AssessmentStatus.PARTIAL.value)
#: The mark for "left blank on the form" in ``answers``.
BLANK = None


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for translation"
    """Mark ``message`` for the translation catalog; the staff pages translate it."""
    return message


class EntryError(ValueError):
    """An entry that cannot be saved (nothing was). ``field`` names the form field at fault
    (``q<item>`` for an item); ``message`` is an English msgid with ``%(name)s`` placeholders
    filled from ``params``."""

    def __init__(self, field: str, message: str, **params: object) -> None:
        self.field = field
        self.message = message
        self.params = params
        super().__init__(message % params if params else message)


@dataclass(frozen=True)
class EntryRules:
    """What an entry for this time point may be, today: whether it may be made at all (or why
    not), whether it is a correction of an earlier staff entry, and the dates a form may carry."""

    allowed: bool
    correction: bool
    earliest: date  # the window's first day
    latest: date  # today, or the last day of the grace when that is earlier
    refusal: str | None = None
    refusal_params: Mapping[str, object] | None = None


def entry_rules(assessment: Assessment, *, now: datetime, schedule: Schedule) -> EntryRules:
    today = today_in(assessment.patient.site.time_zone, now)
    grace = _grace_days(assessment, schedule)
    last_day = assessment.window_closes + timedelta(days=grace)
    latest = min(today, last_day)

    def refused(message: str, **params: object) -> EntryRules:
        return EntryRules(False, False, assessment.window_opens, latest, message, params)

    status = assessment.status
    if status == AssessmentStatus.COMPLETED.value:
        if assessment.mode in STAFF_MODES:
            return EntryRules(True, True, assessment.window_opens, today)
        return refused(
            N_(
                "Time point %(timepoint)s was completed by the patient on the phone: its answers "
                "are not entered again."
            ),
            timepoint=assessment.timepoint,
        )
    if today < assessment.window_opens:
        return refused(
            N_("Time point %(timepoint)s is not open yet: its window opens on %(opens)s."),
            timepoint=assessment.timepoint,
            opens=assessment.window_opens.isoformat(),
        )
    if status not in _ENTERABLE:
        return refused(
            N_("Time point %(timepoint)s is not expected from this patient (%(status)s)."),
            timepoint=assessment.timepoint,
            status=status,
        )
    # A time point the scheduler has not opened or closed yet is taken as its dates say.
    closed = status in _CLOSED or (
        status == AssessmentStatus.SCHEDULED.value and today > assessment.window_closes
    )
    if closed and today > last_day:
        return refused(
            N_(
                "Time point %(timepoint)s closed on %(closes)s and answers could be entered "
                "until %(last)s (%(days)s days later): it is past that."
            ),
            timepoint=assessment.timepoint,
            closes=assessment.window_closes.isoformat(),
            last=last_day.isoformat(),
            days=grace,
        )
    return EntryRules(True, False, assessment.window_opens, latest)


def _grace_days(assessment: Assessment, schedule: Schedule) -> int:
    try:
        return schedule.timepoint(assessment.timepoint).late_entry_days
    except KeyError:  # a time point no longer in the schedule file
        return 0


def parse_item_values(
    instruments: list[Instrument], values: Mapping[str, str]
) -> dict[int, int | None]:
    """The form's ``q<item>`` values: a code, or ``blank`` for an item left blank on the form.

    Every item of every instrument must have one; the first that has none, or has a value that
    is not one of its codes, is refused naming the item.
    """
    answers: dict[int, int | None] = {}
    for instrument in instruments:
        for number, item in instrument.items.items():
            raw = (values.get(f"q{number}") or "").strip()
            if raw == "":
                raise EntryError(
                    f"q{number}",
                    N_("Question %(number)s: choose an answer, or mark it as left blank."),
                    number=number,
                )
            if raw == "blank":
                answers[number] = BLANK
                continue
            if not (raw.isascii() and raw.isdigit()) or int(raw) not in item.codes:
                raise EntryError(
                    f"q{number}",
                    N_("Question %(number)s: %(value)s is not one of its answers (%(codes)s)."),
                    number=number,
                    value=repr(raw[:20]),
                    codes=", ".join(str(c) for c in item.codes),
                )
            answers[number] = int(raw)
    return answers


def enter_answers(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    assessment: Assessment,
    schedule: Schedule,
    registry: InstrumentRegistry,
    mode: str,
    language: str,
    answered_on: date,
    answers: Mapping[int, int | None],
    correction_reason: str | None = None,
) -> None:
    """Store the answers of a paper form or telephone interview, complete and score the time
    point. ``answers`` holds every item (a code, or None for left blank). A correction of an
    earlier staff entry needs ``correction_reason``. Refused with EntryError, nothing written."""
    rules = entry_rules(assessment, now=now, schedule=schedule)
    if not rules.allowed:
        raise EntryError("mode", rules.refusal or "", **(rules.refusal_params or {}))
    if mode not in STAFF_MODES:
        raise EntryError(
            "mode",
            N_("Unknown way of answering %(mode)s (known: %(known)s)."),
            mode=repr(mode),
            known=", ".join(STAFF_MODES),
        )
    if language not in ("sv", "fi", "en"):
        raise EntryError("language", N_("Unknown language %(code)s."), code=repr(language))
    if not rules.earliest <= answered_on <= rules.latest:
        raise EntryError(
            "answered_on",
            N_(
                "The date the patient answered must be between %(earliest)s and %(latest)s "
                "(the window's first day, and today or the last day answers may be entered)."
            ),
            earliest=rules.earliest.isoformat(),
            latest=rules.latest.isoformat(),
        )
    instruments = instruments_of(assessment, registry)
    expected = {n for instrument in instruments for n in instrument.items}
    missing = sorted(expected - set(answers))
    if missing:
        raise EntryError(
            f"q{missing[0]}",
            N_("Question %(number)s: choose an answer, or mark it as left blank."),
            number=missing[0],
        )
    for instrument in instruments:
        try:
            validate_answers(instrument, answers)
        except InvalidAnswerError as exc:
            raise EntryError(
                f"q{exc.item}",
                N_("Question %(number)s: %(value)s is not one of its answers (%(codes)s)."),
                number=exc.item,
                value=repr(exc.value),
                codes=", ".join(str(c) for c in exc.allowed),
            ) from exc
    reason = (correction_reason or "").strip() or None
    if rules.correction and reason is None:
        raise EntryError(
            "correction",
            N_(
                "Time point %(timepoint)s is already entered: changing its answers needs a "
                "reason for the correction."
            ),
            timepoint=assessment.timepoint,
        )
    before = stored_answers(session, assessment.id)
    given = {n: code for n, code in answers.items() if n in expected and code is not None}
    blank = sorted(n for n in expected if answers.get(n) is None)
    changed = sorted(n for n in expected if before.get(n) != given.get(n))
    if (
        rules.correction
        and not changed
        and (assessment.mode, assessment.language)
        == (
            mode,
            language,
        )
    ):
        return  # nothing to correct

    status_before = assessment.status
    missing_before = assessment.missing_reason
    # One conditional UPDATE: a patient's submit or another nurse's entry racing this one finds
    # the time point changed, and this entry is refused instead of mixing the two. The time
    # point is held in progress (it takes answers) until it is completed below.
    claimed = session.execute(
        update(Assessment)
        .where(Assessment.id == assessment.id, Assessment.status == status_before)
        .values(status=AssessmentStatus.IN_PROGRESS.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise EntryError(
            "mode",
            N_("Time point %(timepoint)s changed while you were entering it: look again."),
            timepoint=assessment.timepoint,
        )
    session.refresh(assessment)
    session.execute(delete(Response).where(Response.assessment_id == assessment.id))
    session.expire(assessment, ["responses"])
    answered_at = _answer_time(assessment, now, answered_on)
    for instrument in instruments:
        mine = {n: c for n, c in given.items() if n in instrument.items}
        if mine:
            save_answers(
                session,
                now=answered_at,
                assessment=assessment,
                instrument=instrument,
                language=language,
                answers=mine,
            )
    assessment.status = AssessmentStatus.COMPLETED.value
    assessment.completed_at = answered_at
    assessment.closed_at = assessment.closed_at if rules.correction else now
    assessment.started_at = assessment.started_at or answered_at
    assessment.language = language
    assessment.mode = mode
    assessment.entered_by = f"{actor.type}:{actor.id}"
    assessment.missing_reason = None
    assessment.missing_reason_text = None
    assessment.missing_reason_by = None
    assessment.missing_reason_at = None
    assessment.updated_at = now
    settle_completed(
        session, now=now, assessment=assessment, registry=registry, why="answers entered by staff"
    )
    record(
        session,
        now=now,
        actor=actor,
        action="assessment.entry_corrected" if rules.correction else "assessment.entered",
        object_type="assessment",
        object_id=assessment.id,
        site_id=assessment.patient.site_id,
        before=(
            {"status": status_before, "missing_reason": missing_before}
            if not rules.correction
            else None
        ),
        after={
            "timepoint": assessment.timepoint,
            "mode": mode,
            "language": language,
            "answered_on": answered_on,
            "items_answered": len(given),
            "blank_items": blank,
            **({"changed_items": changed} if rules.correction else {}),
        },
        reason=reason,
    )
    session.flush()


def _answer_time(assessment: Assessment, now: datetime, answered_on: date) -> datetime:
    """When the patient answered: now for today's interview or form, else noon (site time) of
    the date on the form, so that exports carry the day the patient answered, not the day the
    form reached the clinic."""
    zone = ZoneInfo(assessment.patient.site.time_zone)
    if answered_on >= now.astimezone(zone).date():
        return now
    return datetime.combine(answered_on, time(12, 0), tzinfo=zone).astimezone(now.tzinfo)
