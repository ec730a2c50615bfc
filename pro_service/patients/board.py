"""The completion board: one site's patients by time point, with message delivery and flags.

Read-only. A page costs a fixed number of SQL statements whatever the number of patients:

1. the number of matching patients (for paging);
2. the page of patients (with their bad-number flag);
3. the page's time points;
4. the page's message aggregates (last message per time point, reminders sent);
5. the time points of every matching patient counted by nurse-facing status.

Statuses are the nurse-facing ones of :func:`.assessments.display_status`, expressed here in SQL
(:func:`display_status_sql`, :func:`status_condition`) so that filtering and counting happen in
the database; the tests check both against ``display_status`` for every stored status.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from ..messaging.outbox import WENT_OUT
from ..models import (
    Assessment,
    AssessmentStatus,
    MessageStatus,
    OutboxMessage,
    Patient,
    PatientStatus,
    Site,
)
from ..scheduling.assessments import OPEN_STATES, local_today
from ..scheduling.schedule import Schedule

PAGE_SIZE = 50

#: Nurse-facing statuses, in the order the board lists them.
DISPLAY_STATUSES = (
    "upcoming",
    "open",
    "in_progress",
    "overdue",
    "completed",
    "partial",
    "missed",
    "cancelled",
)
PATIENT_STATUSES = tuple(s.value for s in PatientStatus)


class BoardFilterError(ValueError):
    """A filter value the board does not know; ``field`` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class BoardFilters:
    """What the nurse narrowed the board to. Every filter selects patients (rows).

    ``status`` keeps patients with a time point in that status (at ``timepoint`` when one is
    chosen); ``timepoint`` also narrows the columns and the counts to that time point.
    """

    status: str | None = None
    timepoint: str | None = None
    patient_status: str | None = None
    opted_out: bool = False
    bad_number: bool = False
    overdue: bool = False
    #: Patients with a missed time point whose reason is not recorded yet: the nurse's task.
    needs_reason: bool = False

    def validate(self, timepoints: Sequence[str]) -> None:
        if self.status is not None and self.status not in DISPLAY_STATUSES:
            raise BoardFilterError("status", f"unknown time point status {self.status!r}")
        if self.timepoint is not None and self.timepoint not in timepoints:
            raise BoardFilterError("timepoint", f"unknown time point {self.timepoint!r}")
        if self.patient_status is not None and self.patient_status not in PATIENT_STATUSES:
            raise BoardFilterError(
                "patient_status", f"unknown participation status {self.patient_status!r}"
            )


@dataclass(frozen=True)
class Cell:
    """One patient's time point."""

    assessment_id: int
    timepoint: str
    status: str  # a DISPLAY_STATUSES value
    due_date: date
    window_opens: date
    window_closes: date
    completed_at: datetime | None
    completed_on: date | None  # the site's local day of completion
    message_status: str | None = None  # the last (not cancelled) message's status
    message_kind: str | None = None
    reminders_sent: int = 0
    missing_reason: str | None = None  # a missed time point's recorded reason (a code)
    review_flag: str | None = None  # answers outside the window a moved date gives it

    @property
    def needs_reason(self) -> bool:
        return self.status == "missed" and self.missing_reason is None


@dataclass(frozen=True)
class Row:
    patient_id: int
    study_id: str
    status: str  # participation: active, withdrawn, ...
    opted_out: bool
    phone_invalid: bool
    bad_number: bool  # phone_invalid, or a failed message not followed by a delivered one
    #: One entry per column of the board (``Board.timepoints``); None: no such time point
    #: (e.g. no surgery date yet).
    cells: tuple[Cell | None, ...] = ()

    @property
    def overdue(self) -> bool:
        """A time point of this patient is past its due date and not answered yet."""
        return any(cell is not None and cell.status == "overdue" for cell in self.cells)

    @property
    def needs_reason(self) -> bool:
        """A missed time point of this patient has no recorded reason yet (a nurse's task)."""
        return any(cell is not None and cell.needs_reason for cell in self.cells)


@dataclass(frozen=True)
class Board:
    site_id: int
    today: date  # the site's local day the statuses are computed for
    timepoints: tuple[str, ...]  # the columns, in schedule order
    rows: list[Row]
    counts: dict[str, int]  # display status -> time points of all matching patients
    patients: int  # matching patients, on every page
    page: int
    pages: int
    page_size: int

    @property
    def first_index(self) -> int:
        """1-based position of the page's first patient among the matching ones (0: none)."""
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return (self.page - 1) * self.page_size + len(self.rows)


# --- statuses in SQL --------------------------------------------------------------------------


def status_condition(
    status: str, today: date, assessment: type[Assessment] = Assessment
) -> ColumnElement[bool]:
    """A WHERE condition true when the display status of ``assessment`` (the model or an
    alias of it) is ``status``."""
    a = assessment
    if status == "upcoming":
        return a.status == AssessmentStatus.SCHEDULED.value
    if status == "missed":
        return a.status == AssessmentStatus.EXPIRED.value
    if status == "overdue":
        return and_(a.status.in_(OPEN_STATES), a.due_date < today)
    if status in OPEN_STATES:
        return and_(a.status == status, a.due_date >= today)
    if status in (
        AssessmentStatus.COMPLETED.value,
        AssessmentStatus.PARTIAL.value,
        AssessmentStatus.CANCELLED.value,
    ):
        return a.status == status
    return false()


def display_status_sql(today: date) -> ColumnElement[str]:
    """The display status of ``Assessment`` as an SQL expression."""
    return case(
        (Assessment.status == AssessmentStatus.SCHEDULED.value, literal("upcoming")),
        (Assessment.status == AssessmentStatus.EXPIRED.value, literal("missed")),
        (
            and_(Assessment.status.in_(OPEN_STATES), Assessment.due_date < today),
            literal("overdue"),
        ),
        else_=Assessment.status,
    )


def bad_number_sql() -> ColumnElement[bool]:
    """The patient's number is marked invalid, or a message to it failed and none was
    delivered after that failure."""
    failed = aliased(OutboxMessage)
    later = aliased(OutboxMessage)
    delivered_after = (
        select(later.id)
        .where(
            later.patient_id == Patient.id,
            later.id > failed.id,
            later.status == MessageStatus.DELIVERED.value,
        )
        # Correlated to the patient row itself (not only to ``failed``), so PostgreSQL runs it
        # per patient of the page instead of hashing every failed message of every site.
        .correlate_except(later)
        .exists()
    )
    failed_unresolved = (
        select(failed.id)
        .where(
            failed.patient_id == Patient.id,
            failed.status == MessageStatus.FAILED.value,
            ~delivered_after,
        )
        .correlate(Patient)
        .exists()
    )
    return or_(Patient.phone_invalid.is_(True), failed_unresolved)


def _patient_conditions(
    site_id: int, filters: BoardFilters, today: date
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Patient.site_id == site_id]
    if filters.patient_status is not None:
        conditions.append(Patient.status == filters.patient_status)
    if filters.opted_out:
        conditions.append(Patient.opted_out.is_(True))
    if filters.bad_number:
        conditions.append(bad_number_sql())
    # An alias, so that the subqueries stay correlated to the patient only, also in the
    # counting query whose FROM holds the assessments too.
    a = aliased(Assessment)
    if filters.status is not None or filters.timepoint is not None:
        at: list[ColumnElement[bool]] = [a.patient_id == Patient.id]
        if filters.timepoint is not None:
            at.append(a.timepoint == filters.timepoint)
        if filters.status is not None:
            at.append(status_condition(filters.status, today, a))
        conditions.append(select(a.id).where(*at).correlate(Patient).exists())
    if filters.overdue:
        conditions.append(
            select(a.id)
            .where(a.patient_id == Patient.id, status_condition("overdue", today, a))
            .correlate(Patient)
            .exists()
        )
    if filters.needs_reason:
        conditions.append(
            select(a.id)
            .where(
                a.patient_id == Patient.id,
                a.status == AssessmentStatus.EXPIRED.value,
                a.missing_reason.is_(None),
            )
            .correlate(Patient)
            .exists()
        )
    return conditions


# --- the board --------------------------------------------------------------------------------


def board_timepoints(session: Session, *, site: Site, schedule: Schedule) -> list[str]:
    """The board's columns: the main course's time points, and a follow-up track's only where
    the site has a patient with its status (a screen of 1,280 pixels holds the usual ones)."""
    keys = [tp.key for tp in schedule.main_timepoints]
    for status, track in schedule.tracks.items():
        if session.scalar(
            select(Patient.id).where(Patient.site_id == site.id, Patient.status == status).limit(1)
        ):
            keys.extend(track.timepoints)
    return keys


def load_board(
    session: Session,
    *,
    now: datetime,
    site: Site,
    timepoints: Sequence[str],
    filters: BoardFilters | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> Board:
    """One page of ``site``'s board, patients in study ID order.

    ``timepoints`` are the schedule's keys in order (the columns). A page past the last one
    shows the last page.
    """
    filters = filters or BoardFilters()
    filters.validate(timepoints)
    if page < 1:
        raise BoardFilterError("page", "the page number must be 1 or more")
    today = local_today(site, now)
    conditions = _patient_conditions(site.id, filters, today)

    total = session.scalar(select(func.count()).select_from(Patient).where(*conditions)) or 0
    pages = max(1, math.ceil(total / page_size))
    page = min(page, pages)

    bad_number = bad_number_sql().label("bad_number")
    patient_rows = session.execute(
        select(
            Patient.id,
            Patient.study_id,
            Patient.status,
            Patient.opted_out,
            Patient.phone_invalid,
            bad_number,
        )
        .where(*conditions)
        .order_by(Patient.study_id, Patient.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    ).all()
    columns = tuple(timepoints) if filters.timepoint is None else (filters.timepoint,)
    cells: dict[int, dict[str, Cell]] = {r.id: {} for r in patient_rows}
    if cells:
        _fill_cells(
            session, cells, today=today, zone=ZoneInfo(site.time_zone), only=filters.timepoint
        )
        extra = sorted({k for found in cells.values() for k in found} - set(columns))
        columns += tuple(extra)  # time points no longer in the schedule file
    rows = [
        Row(
            patient_id=r.id,
            study_id=r.study_id,
            status=r.status,
            opted_out=bool(r.opted_out),
            phone_invalid=bool(r.phone_invalid),
            bad_number=bool(r.bad_number),
            cells=tuple(cells[r.id].get(k) for k in columns),
        )
        for r in patient_rows
    ]

    shown = (
        select(display_status_sql(today).label("shown"))
        .select_from(Assessment)
        .join(Patient, Patient.id == Assessment.patient_id)
        .where(*conditions)
    )
    if filters.timepoint is not None:
        shown = shown.where(Assessment.timepoint == filters.timepoint)
    statuses = shown.subquery()
    counts = dict.fromkeys(DISPLAY_STATUSES, 0)
    for status, number in session.execute(
        select(statuses.c.shown, func.count()).group_by(statuses.c.shown)
    ):
        counts[status] = int(number)

    return Board(
        site_id=site.id,
        today=today,
        timepoints=columns,
        rows=rows,
        counts=counts,
        patients=int(total),
        page=page,
        pages=pages,
        page_size=page_size,
    )


def _fill_cells(
    session: Session,
    cells: dict[int, dict[str, Cell]],
    *,
    today: date,
    zone: ZoneInfo,
    only: str | None,
) -> None:
    """The page's time points and their message aggregates (two statements), into ``cells``
    (patient id -> time point -> cell)."""
    ids = list(cells)
    assessments = select(
        Assessment.id,
        Assessment.patient_id,
        Assessment.timepoint,
        display_status_sql(today).label("display"),
        Assessment.due_date,
        Assessment.window_opens,
        Assessment.window_closes,
        Assessment.completed_at,
        Assessment.missing_reason,
        Assessment.review_flag,
    ).where(Assessment.patient_id.in_(ids))
    if only is not None:
        assessments = assessments.where(Assessment.timepoint == only)

    message = (
        select(
            OutboxMessage.assessment_id,
            OutboxMessage.status,
            OutboxMessage.kind,
            func.row_number()
            .over(
                partition_by=OutboxMessage.assessment_id,
                order_by=(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()),
            )
            .label("position"),
            func.count(
                case(
                    (
                        and_(OutboxMessage.kind == "reminder", OutboxMessage.status.in_(WENT_OUT)),
                        1,
                    )
                )
            )
            .over(partition_by=OutboxMessage.assessment_id)
            .label("reminders"),
        )
        .where(
            OutboxMessage.patient_id.in_(ids),
            OutboxMessage.assessment_id.is_not(None),
            OutboxMessage.status != MessageStatus.CANCELLED.value,
        )
        .subquery()
    )
    last_messages = {
        m.assessment_id: m
        for m in session.execute(
            select(
                message.c.assessment_id, message.c.status, message.c.kind, message.c.reminders
            ).where(message.c.position == 1)
        )
    }
    for a in session.execute(assessments):
        m = last_messages.get(a.id)
        cells[a.patient_id][a.timepoint] = Cell(
            assessment_id=a.id,
            timepoint=a.timepoint,
            status=a.display,
            due_date=a.due_date,
            window_opens=a.window_opens,
            window_closes=a.window_closes,
            completed_at=a.completed_at,
            completed_on=None if a.completed_at is None else a.completed_at.astimezone(zone).date(),
            message_status=None if m is None else m.status,
            message_kind=None if m is None else m.kind,
            reminders_sent=0 if m is None else int(m.reminders),
            missing_reason=a.missing_reason,
            review_flag=a.review_flag,
        )
