"""Reading the audit log for the audit trail page and its CSV download.

Filters name things the way an admin knows them (a staff user's email, a patient's study ID, a
site code) and are resolved to the stored ids first. Every page costs a fixed number of queries,
whatever its length: the filters (at most three look-ups), the page, the count, and one query per
kind of name shown (staff users, patients, time points, sites). Dates are UTC calendar days.

Events are listed newest first (time, then id) with keyset paging: a page is "the events older (or
newer) than event N", so paging stays fast and stable while new events arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from ..models import Assessment, AuditEvent, Patient, Site, StaffUser

PAGE_SIZE = 50
CSV_BATCH = 500

#: Actor types the actor filter accepts by name; anything with an ``@`` is a staff user's email.
ACTOR_TYPES = ("system", "operator", "patient")


class AuditFilterError(ValueError):
    """A filter that names nothing known. ``field`` is the filter at fault, ``problem`` says why:

    ``unknown_staff`` (no staff user with that email), ``unknown_actor``, ``unknown_site``,
    ``unknown_patient`` (no such study ID), ``unknown_object`` (no staff user or site with that
    email or code), ``number_needed`` (this object type is named by its number),
    ``type_needed`` (an object was named without its type), ``end_before_start``.
    """

    def __init__(self, field: str, problem: str, value: str = "") -> None:
        self.field = field
        self.problem = problem
        self.value = value
        super().__init__(f"{field}: {problem} {value!r}")


@dataclass(frozen=True)
class AuditFilters:
    """What to show. None means "no restriction"."""

    action: str | None = None
    actor: str | None = None  # a staff user's email, or "system", "operator", "patient"
    site: str | None = None  # site code
    object_type: str | None = None
    object_ref: str | None = None  # study ID, email, site code, or the object's number
    date_from: date | None = None  # UTC calendar day, inclusive
    date_to: date | None = None  # UTC calendar day, inclusive

    def describe(self) -> dict[str, object]:
        """The filters as plain values (for the audit event of a download)."""
        return {
            "action": self.action,
            "actor": self.actor,
            "site": self.site,
            "object_type": self.object_type,
            "object": self.object_ref,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
        }


@dataclass(frozen=True)
class Change:
    """One key of an event's before/after values, as text; None where that side lacks the key."""

    key: str
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before is not None and self.after is not None and self.before != self.after


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor_type: str
    actor_id: str | None
    actor_name: str | None  # staff: email; patient: study ID; system/operator: their name
    action: str
    object_type: str | None
    object_id: str | None
    object_name: str | None  # patient: study ID; time point: "UPP-001 m3"; email; site code
    site_code: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    changes: tuple[Change, ...]
    reason: str | None


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    total: int  # events matching the filters, on every page
    older: int | None  # cursor for the next, older page (None: this is the oldest)
    newer: int | None  # cursor for the previous, newer page (None: this is the newest)


@dataclass(frozen=True)
class FilterChoices:
    actions: list[str]  # the actions present in the log
    object_types: list[str]  # the object types present in the log
    sites: list[tuple[str, str]]  # (code, name)
    staff_emails: list[str]


def filter_choices(session: Session) -> FilterChoices:
    """What the filter form offers (four queries)."""
    actions = session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    types = session.scalars(
        select(AuditEvent.object_type)
        .where(AuditEvent.object_type.is_not(None))
        .distinct()
        .order_by(AuditEvent.object_type)
    )
    sites = session.execute(select(Site.code, Site.name).order_by(Site.code))
    emails = session.scalars(select(StaffUser.email).order_by(StaffUser.email))
    return FilterChoices(
        actions=list(actions),
        object_types=[t for t in types if t],
        sites=[(code, name) for code, name in sites],
        staff_emails=list(emails),
    )


# --- filters -----------------------------------------------------------------------------------


def _utc_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _conditions(session: Session, filters: AuditFilters) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``filters``; AuditFilterError names the first filter at fault."""
    out: list[ColumnElement[bool]] = []
    if filters.action:
        out.append(AuditEvent.action == filters.action)
    if filters.actor:
        out.append(_actor_condition(session, filters.actor.strip()))
    if filters.site:
        site_id = session.scalar(select(Site.id).where(Site.code == filters.site.strip().upper()))
        if site_id is None:
            raise AuditFilterError("site", "unknown_site", filters.site)
        out.append(AuditEvent.site_id == site_id)
    ref = (filters.object_ref or "").strip()
    if ref and not filters.object_type:
        raise AuditFilterError("object_type", "type_needed", ref)
    if filters.object_type:
        out.append(_object_condition(session, filters.object_type, ref))
    if filters.date_from and filters.date_to and filters.date_to < filters.date_from:
        raise AuditFilterError("date_to", "end_before_start", filters.date_to.isoformat())
    if filters.date_from:
        out.append(AuditEvent.at >= _utc_start(filters.date_from))
    if filters.date_to:
        out.append(AuditEvent.at < _utc_start(filters.date_to + timedelta(days=1)))
    return out


def _actor_condition(session: Session, actor: str) -> ColumnElement[bool]:
    if actor in ACTOR_TYPES:
        return AuditEvent.actor_type == actor
    if "@" in actor:
        user_id = session.scalar(
            select(StaffUser.id).where(func.lower(StaffUser.email) == actor.lower())
        )
        if user_id is None:
            raise AuditFilterError("actor", "unknown_staff", actor)
        return and_(AuditEvent.actor_type == "staff", AuditEvent.actor_id == str(user_id))
    raise AuditFilterError("actor", "unknown_actor", actor)


def _object_condition(session: Session, object_type: str, ref: str) -> ColumnElement[bool]:
    is_type = AuditEvent.object_type == object_type
    if not ref:
        return is_type
    if object_type == "patient":
        # The patient's own events and those of the patient's time points.
        rows = session.execute(
            select(Patient.id, Assessment.id)
            .outerjoin(Assessment, Assessment.patient_id == Patient.id)
            .where(func.upper(Patient.study_id) == ref.upper())
        ).all()
        if not rows:
            raise AuditFilterError("object_ref", "unknown_patient", ref)
        assessments = sorted(str(a) for _p, a in rows if a is not None)
        own = and_(is_type, AuditEvent.object_id == str(rows[0][0]))
        if not assessments:
            return own
        return or_(
            own,
            and_(AuditEvent.object_type == "assessment", AuditEvent.object_id.in_(assessments)),
        )
    if object_type in ("staff_user", "site") and not ref.isdigit():
        found = session.scalar(
            select(StaffUser.id).where(func.lower(StaffUser.email) == ref.lower())
            if object_type == "staff_user"
            else select(Site.id).where(Site.code == ref.upper())
        )
        if found is None:
            raise AuditFilterError("object_ref", "unknown_object", ref)
        return and_(is_type, AuditEvent.object_id == str(found))
    if not ref.isdigit():
        raise AuditFilterError("object_ref", "number_needed", ref)
    return and_(is_type, AuditEvent.object_id == str(int(ref)))


def check_filters(session: Session, filters: AuditFilters) -> None:
    """Raise AuditFilterError for a filter that names nothing known (nothing else happens)."""
    _conditions(session, filters)


# --- reading events ----------------------------------------------------------------------------

_COLUMNS = (
    AuditEvent.id,
    AuditEvent.at,
    AuditEvent.actor_type,
    AuditEvent.actor_id,
    AuditEvent.action,
    AuditEvent.object_type,
    AuditEvent.object_id,
    AuditEvent.site_id,
    AuditEvent.before,
    AuditEvent.after,
    AuditEvent.reason,
)


def _older_than(cursor: int) -> ColumnElement[bool]:
    at = select(AuditEvent.at).where(AuditEvent.id == cursor).scalar_subquery()
    return or_(AuditEvent.at < at, and_(AuditEvent.at == at, AuditEvent.id < cursor))


def _newer_than(cursor: int) -> ColumnElement[bool]:
    at = select(AuditEvent.at).where(AuditEvent.id == cursor).scalar_subquery()
    return or_(AuditEvent.at > at, and_(AuditEvent.at == at, AuditEvent.id > cursor))


def audit_page(
    session: Session,
    filters: AuditFilters,
    *,
    before: int | None = None,
    after: int | None = None,
    page_size: int = PAGE_SIZE,
) -> AuditPage:
    """One page of events, newest first: the newest, or those older than event ``before``, or
    those newer than event ``after``. AuditFilterError for a filter that names nothing known."""
    where = _conditions(session, filters)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    query = select(*_COLUMNS).where(*where).limit(page_size + 1)
    if after is not None:
        found = list(
            session.execute(query.where(_newer_than(after)).order_by(AuditEvent.at, AuditEvent.id))
        )
        more_newer = len(found) > page_size
        rows = list(reversed(found[:page_size]))
        newer = rows[0].id if rows and more_newer else None
        older = rows[-1].id if rows else None
    else:
        if before is not None:
            query = query.where(_older_than(before))
        found = list(session.execute(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())))
        rows = found[:page_size]
        older = rows[-1].id if len(found) > page_size else None
        newer = rows[0].id if rows and before is not None else None
    return AuditPage(_readable(session, rows), int(total), older, newer)


def iter_audit_rows(
    session: Session, filters: AuditFilters, *, up_to_id: int, batch_size: int = CSV_BATCH
) -> Iterator[AuditRow]:
    """Every matching event up to event ``up_to_id``, oldest first, read one batch at a time
    (a fixed number of queries per batch, so memory holds one batch)."""
    where = [*_conditions(session, filters), AuditEvent.id <= up_to_id]
    last: tuple[datetime, int] | None = None
    while True:
        query = select(*_COLUMNS).where(*where)
        if last is not None:
            at, event_id = last
            query = query.where(
                or_(AuditEvent.at > at, and_(AuditEvent.at == at, AuditEvent.id > event_id))
            )
        batch = list(
            session.execute(query.order_by(AuditEvent.at, AuditEvent.id).limit(batch_size))
        )
        if not batch:
            return
        yield from _readable(session, batch)
        if len(batch) < batch_size:
            return
        last = (batch[-1].at, batch[-1].id)


# --- names and differences ---------------------------------------------------------------------


def _ids(values: Iterable[str | None]) -> set[int]:
    return {int(v) for v in values if v is not None and v.isdigit()}


def _readable(session: Session, rows: Sequence[Any]) -> list[AuditRow]:
    """AuditRows for result rows, names looked up with one query per kind of object."""
    staff_ids = _ids(r.actor_id for r in rows if r.actor_type == "staff") | _ids(
        r.object_id for r in rows if r.object_type == "staff_user"
    )
    patient_ids = _ids(r.actor_id for r in rows if r.actor_type == "patient") | _ids(
        r.object_id for r in rows if r.object_type == "patient"
    )
    assessment_ids = _ids(r.object_id for r in rows if r.object_type == "assessment")
    site_ids = {r.site_id for r in rows if r.site_id is not None} | _ids(
        r.object_id for r in rows if r.object_type == "site"
    )
    emails: dict[int, str] = {}
    if staff_ids:
        emails = dict(
            session.execute(
                select(StaffUser.id, StaffUser.email).where(StaffUser.id.in_(staff_ids))
            ).all()
        )
    study_ids: dict[int, str] = {}
    if patient_ids:
        study_ids = dict(
            session.execute(
                select(Patient.id, Patient.study_id).where(Patient.id.in_(patient_ids))
            ).all()
        )
    timepoints: dict[int, str] = {}
    if assessment_ids:
        timepoints = {
            a_id: f"{study_id} {timepoint}"
            for a_id, study_id, timepoint in session.execute(
                select(Assessment.id, Patient.study_id, Assessment.timepoint)
                .join(Patient, Assessment.patient_id == Patient.id)
                .where(Assessment.id.in_(assessment_ids))
            )
        }
    codes: dict[int, str] = {}
    if site_ids:
        codes = dict(session.execute(select(Site.id, Site.code).where(Site.id.in_(site_ids))).all())
    names = {"staff": emails, "patient": study_ids}
    object_names = {
        "staff_user": emails,
        "patient": study_ids,
        "assessment": timepoints,
        "site": codes,
    }

    def name(table: Mapping[int, str], value: str | None) -> str | None:
        return table.get(int(value)) if value is not None and value.isdigit() else None

    def actor_name(actor_type: str, actor_id: str | None) -> str | None:
        if actor_type in names:
            return name(names[actor_type], actor_id)
        return actor_id  # system and operator actors are named by their id ("scheduler", "cli")

    return [
        AuditRow(
            id=r.id,
            at=r.at,
            actor_type=r.actor_type,
            actor_id=r.actor_id,
            actor_name=actor_name(r.actor_type, r.actor_id),
            action=r.action,
            object_type=r.object_type,
            object_id=r.object_id,
            object_name=None
            if r.object_type is None
            else name(object_names.get(r.object_type, {}), r.object_id),
            site_code=None if r.site_id is None else codes.get(r.site_id),
            before=r.before,
            after=r.after,
            changes=changes(r.before, r.after),
            reason=r.reason,
        )
        for r in rows
    ]


def value_text(value: Any) -> str:
    """A stored value as short text: lists joined with commas, mappings as ``key: value``."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v) for v in value) if value else "–"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {value_text(v)}" for k, v in value.items()) if value else "–"
    return str(value)


def changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> tuple[Change, ...]:
    """Every key of ``before`` and ``after`` (in that order), each side as text."""
    before = before or {}
    after = after or {}
    keys = list(dict.fromkeys([*before, *after]))
    return tuple(
        Change(
            key,
            value_text(before[key]) if key in before else None,
            value_text(after[key]) if key in after else None,
        )
        for key in keys
    )


__all__ = [
    "PAGE_SIZE",
    "AuditFilterError",
    "AuditFilters",
    "AuditPage",
    "AuditRow",
    "Change",
    "FilterChoices",
    "audit_page",
    "changes",
    "check_filters",
    "filter_choices",
    "iter_audit_rows",
    "value_text",
]
