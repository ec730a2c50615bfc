"""What an export reads: filters, their validation, and the stream of time points.

Every expected time point is exported, each with its reported state (complete, partial, missed,
open, not yet due, not expected: :data:`pro_service.models.REPORTED_STATE`), or with
``completed_only`` the completed ones alone. They are read through a server-side cursor ordered
by study ID, due date and assessment id; their scores and answers are fetched one batch of
assessments at a time (one indexed ``WHERE assessment_id IN (...)`` query each), so memory holds
one batch, whatever the number of assessments. Only pseudonymous columns are selected: never a
phone number or a token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..instruments import Instrument, InstrumentRegistry
from ..models import (
    REPORTED_STATE,
    Assessment,
    AssessmentStatus,
    Patient,
    Response,
    Score,
    Site,
)
from ..scheduling.schedule import Schedule

BATCH_SIZE = 500


class ExportFilterError(ValueError):
    """A filter that names nothing known; ``option`` is the filter at fault (``site``...)."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")


@dataclass(frozen=True)
class ExportFilters:
    """What to export. Empty tuples and None mean "no restriction"."""

    sites: tuple[str, ...] = ()  # site codes
    timepoints: tuple[str, ...] = ()  # time point keys
    instruments: tuple[str, ...] = ()  # instrument ids, e.g. "qlq-c30"
    #: Completed on or after / on or before (site's local calendar day); a time point without
    #: a completion by its due date.
    date_from: date | None = None
    date_to: date | None = None
    completed_only: bool = False  # only completed time points (else every expected one)

    def describe(self) -> dict[str, object]:
        """The filters as plain values, for the audit log and the dictionary's header."""
        return {
            "sites": list(self.sites),
            "timepoints": list(self.timepoints),
            "instruments": list(self.instruments),
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "completed_only": self.completed_only,
        }


@dataclass(frozen=True)
class Selection:
    """Validated filters, ready to query."""

    site_ids: tuple[int, ...] | None  # None: every site
    timepoints: tuple[str, ...] | None
    instruments: tuple[Instrument, ...]  # every version of each selected instrument, item order
    date_from: date | None
    date_to: date | None
    completed_only: bool = False

    @property
    def instrument_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.id for i in self.instruments))

    @property
    def scale_order(self) -> dict[tuple[str, str], int]:
        """(instrument id, scale) -> position: the order of scales in every exported row.

        Instruments in registry order, each one's scales and summary scores as its file lists
        them (a scale first seen in an older version keeps its place).
        """
        order: dict[tuple[str, str], int] = {}
        for instrument in self.instruments:
            for code in instrument.score_codes:
                order.setdefault((instrument.id, code), len(order))
        return order


def resolve_filters(
    session: Session,
    filters: ExportFilters,
    *,
    registry: InstrumentRegistry,
    schedule: Schedule,
    allowed_site_ids: frozenset[int] | set[int] | None = None,
) -> Selection:
    """Check every filter against what exists; raise ExportFilterError naming the first problem.

    ``allowed_site_ids`` limits the export to those sites (None: all); a site outside it is
    reported exactly like an unknown one, so the message reveals nothing.
    """
    site_ids: tuple[int, ...] | None = None
    if filters.sites:
        found = dict(
            session.execute(
                select(Site.code, Site.id).where(Site.code.in_([c.upper() for c in filters.sites]))
            ).all()
        )
        ids = []
        for code in filters.sites:
            site_id = found.get(code.upper())
            if site_id is None or (
                allowed_site_ids is not None and site_id not in allowed_site_ids
            ):
                known = _known_sites(session, allowed_site_ids)
                raise ExportFilterError("site", f"no site with code {code!r} (known: {known})")
            ids.append(site_id)
        site_ids = tuple(dict.fromkeys(ids))
    elif allowed_site_ids is not None:
        site_ids = tuple(sorted(allowed_site_ids))

    timepoints: tuple[str, ...] | None = None
    if filters.timepoints:
        known_tp = [tp.key for tp in schedule.timepoints]
        stored = set(session.scalars(select(Assessment.timepoint).distinct()))
        for key in filters.timepoints:
            if key not in known_tp and key not in stored:
                raise ExportFilterError(
                    "timepoint", f"no time point {key!r} (known: {', '.join(known_tp)})"
                )
        timepoints = tuple(dict.fromkeys(filters.timepoints))

    if filters.instruments:
        chosen = []
        for instrument_id in filters.instruments:
            if instrument_id not in registry.ids():
                raise ExportFilterError(
                    "instrument",
                    f"no instrument {instrument_id!r} (known: {', '.join(registry.ids())})",
                )
            chosen.append(instrument_id)
        instruments = tuple(i for i in registry.all() if i.id in chosen)
    else:
        instruments = registry.all()

    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise ExportFilterError(
            "to",
            f"the end date {filters.date_to.isoformat()} is before the start date "
            f"{filters.date_from.isoformat()}",
        )
    return Selection(
        site_ids,
        timepoints,
        instruments,
        filters.date_from,
        filters.date_to,
        filters.completed_only,
    )


def known_references(
    selection: Selection, registry: InstrumentRegistry
) -> list[tuple[str, str, str]]:
    """(reference, instrument id, version) for every reference in an assessment's instruments
    column that names a selected instrument: ``id:version`` of a version the registry knows, or
    a bare ``id`` (its newest version)."""
    wanted = set(selection.instrument_ids)
    rows: list[tuple[str, str, str]] = []
    for instrument in registry.all():
        if instrument.id in wanted:
            rows.append(
                (f"{instrument.id}:{instrument.version}", instrument.id, instrument.version)
            )
    for instrument_id in selection.instrument_ids:
        newest = registry.get(instrument_id)
        rows.append((instrument_id, instrument_id, newest.version))
    return rows


def _known_sites(session: Session, allowed: frozenset[int] | set[int] | None) -> str:
    query = select(Site.code).order_by(Site.code)
    if allowed is not None:
        query = query.where(Site.id.in_(sorted(allowed)))
    return ", ".join(session.scalars(query)) or "none"


class StoredScore(NamedTuple):
    """One stored score (a tuple: hundreds of thousands are made per export)."""

    instrument_id: str
    instrument_version: str
    scale: str
    value: float | None
    items_in_scale: int
    items_answered: int
    algorithm_version: str
    language: str | None  # of the answers it was computed from


@dataclass
class ExportedAssessment:
    """One time point of one patient, with its stored scores and answers (none unless it was
    completed or closed as partial)."""

    assessment_id: int
    study_id: str
    site: str
    timepoint: str
    completed_at: datetime | None
    completed_on: date | None  # local calendar day at the site
    days_from_surgery: int | None
    language: str | None
    instruments: tuple[Instrument, ...]  # the selected instruments this assessment holds
    state: str = "complete"  # REPORTED_STATE of its status
    missing_reason: str | None = None
    mode: str | None = None  # electronic, paper, telephone (None when nothing was answered)
    review_flag: str | None = None  # outside_window: see patients/schedule_changes.py
    scores: list[StoredScore] = field(default_factory=list)
    answers: dict[int, int] = field(default_factory=dict)  # item number -> response code
    answer_language: dict[str, str] = field(default_factory=dict)  # instrument id -> language
    # (from the instrument's scores: ``Score.language``)


def _assessment_query(selection: Selection) -> Any:  # a Select of the columns below
    query = (
        select(
            Assessment.id,
            Assessment.timepoint,
            Assessment.completed_at,
            Assessment.language,
            Assessment.instruments,
            Patient.study_id,
            Patient.surgery_date,
            Site.code,
            Site.time_zone,
            Assessment.status,
            Assessment.missing_reason,
            Assessment.mode,
            Assessment.due_date,
            Assessment.review_flag,
        )
        .join(Patient, Assessment.patient_id == Patient.id)
        .join(Site, Patient.site_id == Site.id)
    )
    if selection.completed_only:
        query = query.where(Assessment.status == AssessmentStatus.COMPLETED.value)
    if selection.site_ids is not None:
        query = query.where(Patient.site_id.in_(selection.site_ids))
    if selection.timepoints is not None:
        query = query.where(Assessment.timepoint.in_(selection.timepoints))
    # The date filter is on the site's local day of completion (the due date of a time point
    # not completed); the UTC bounds here are a day wider on each side (no time zone is more
    # than 14 hours off UTC) and the exact test is done per row.
    if selection.date_from is not None:
        start = datetime.combine(selection.date_from - timedelta(days=1), time(0), tzinfo=UTC)
        query = query.where(
            or_(
                Assessment.completed_at >= start,
                and_(
                    Assessment.completed_at.is_(None),
                    Assessment.due_date >= selection.date_from,
                ),
            )
        )
    if selection.date_to is not None:
        end = datetime.combine(selection.date_to + timedelta(days=2), time(0), tzinfo=UTC)
        query = query.where(
            or_(
                Assessment.completed_at < end,
                and_(Assessment.completed_at.is_(None), Assessment.due_date <= selection.date_to),
            )
        )
    return query


def count_assessments(session: Session, selection: Selection) -> int:
    """How many assessments the export will look at (an upper bound: for a progress bar)."""
    inner = _assessment_query(selection).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def iter_assessments(
    session: Session,
    selection: Selection,
    *,
    registry: InstrumentRegistry,
    batch_size: int = BATCH_SIZE,
    on_examined: Callable[[int], None] | None = None,
    with_answers: bool = True,
) -> Iterator[ExportedAssessment]:
    """Time points in study ID, due date order, each with its scores and answers.

    ``with_answers=False`` (the long table, which has no item columns) leaves ``answers``
    empty. The language of each instrument's answers comes with its scores.
    """
    query = _assessment_query(selection).order_by(
        Patient.study_id, Assessment.due_date, Assessment.id
    )
    wanted_ids = set(selection.instrument_ids)
    scale_order = selection.scale_order
    zones: dict[str, ZoneInfo] = {}
    instruments_by_key: dict[str, Instrument | None] = {}

    def instrument_for(key: str) -> Instrument | None:
        if key not in instruments_by_key:
            try:
                instrument = registry.by_key(key)
            except KeyError:
                instrument = None
            instruments_by_key[key] = (
                instrument if instrument is not None and instrument.id in wanted_ids else None
            )
        return instruments_by_key[key]

    result = session.execute(query.execution_options(yield_per=batch_size))
    for partition in result.partitions():
        batch: list[ExportedAssessment] = []
        for row in partition:
            (a_id, timepoint, completed_at, language, refs, study_id, surgery, site, tz) = row[:9]
            status, missing_reason, mode, due, review_flag = row[9:]
            zone = zones.get(tz) or zones.setdefault(tz, ZoneInfo(tz))
            completed_on = None if completed_at is None else completed_at.astimezone(zone).date()
            day = due if completed_on is None else completed_on
            if (selection.date_from and day < selection.date_from) or (
                selection.date_to and day > selection.date_to
            ):
                continue
            instruments = tuple(i for i in (instrument_for(r) for r in refs) if i is not None)
            if not instruments:
                continue
            batch.append(
                ExportedAssessment(
                    assessment_id=a_id,
                    study_id=study_id,
                    site=site,
                    timepoint=timepoint,
                    completed_at=completed_at,
                    completed_on=completed_on,
                    days_from_surgery=(
                        None
                        if surgery is None or completed_on is None
                        else (completed_on - surgery).days
                    ),
                    language=language,
                    instruments=instruments,
                    state=REPORTED_STATE.get(status, status),
                    missing_reason=missing_reason,
                    mode=mode,
                    review_flag=review_flag,
                )
            )
        if on_examined is not None:
            on_examined(len(partition))
        if batch:
            _attach_scores_and_answers(
                session,
                batch,
                selection.instrument_ids,
                scale_order=scale_order,
                with_answers=with_answers,
            )
            yield from batch


def _position(order: dict[tuple[str, str], int], last: int, score: StoredScore) -> int:
    return order.get((score.instrument_id, score.scale), last)


def _attach_scores_and_answers(
    session: Session,
    batch: Sequence[ExportedAssessment],
    instrument_ids: Sequence[str],
    *,
    scale_order: dict[tuple[str, str], int],
    with_answers: bool,
) -> None:
    by_id = {a.assessment_id: a for a in batch}
    ids = list(by_id)
    scores = session.execute(
        select(
            Score.assessment_id,
            Score.instrument_id,
            Score.instrument_version,
            Score.scale,
            Score.value,
            Score.items_in_scale,
            Score.items_answered,
            Score.algorithm_version,
            Score.language,
        ).where(Score.assessment_id.in_(ids), Score.instrument_id.in_(instrument_ids))
    )
    for row in scores:
        exported = by_id[row[0]]
        score = StoredScore._make(row[1:])
        exported.scores.append(score)
        if score.language is not None:
            exported.answer_language.setdefault(score.instrument_id, score.language)
    if with_answers:
        answers = session.execute(
            select(Response.assessment_id, Response.item_number, Response.code).where(
                Response.assessment_id.in_(ids), Response.instrument_id.in_(instrument_ids)
            )
        )
        for a_id, item, code in answers:
            by_id[a_id].answers[item] = code
    key = partial(_position, scale_order, len(scale_order))
    for exported in batch:
        exported.scores.sort(key=key)
