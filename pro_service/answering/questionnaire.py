"""The patient's way through an assessment: finding it by its link, screens, progress, review.

No Flask here: the views pass the form as a plain multi-mapping and the clock as ``now``.

Screens are numbered 1..N across the assessment: the screens of its first instrument as the
instrument data groups them, then those of the next instrument, and so on.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import cast

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.orm import Session

from .. import rate_limit
from ..audit import Actor, record
from ..crypto import Vault, hash_token
from ..db import one_of
from ..instruments import Instrument, InstrumentRegistry, Screen, validate_answers
from ..instruments.scoring import InvalidAnswerError
from ..models import (
    FOLLOWED_STATUSES,
    Assessment,
    MessageStatus,
    OutboxMessage,
    Patient,
    Site,
)
from ..scheduling.assessments import OPEN_STATES, today_in
from .responses import (
    complete_by_id,
    instruments_named,
    store_answers_taken,
    stored_answers,
)

# A link token is secrets.token_urlsafe(24): 32 url-safe characters. Anything else is unknown
# without touching the database.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_ITEM_FIELD = re.compile(r"^q([1-9][0-9]{0,3})$")  # q1..q9999, one spelling per item
_CODE_VALUE = re.compile(r"^(0|[1-9][0-9]{0,2})$")
#: Form fields that are not answers. ``nav`` says where to go after saving.
CONTROL_FIELDS = frozenset({"csrf_token", "screen", "nav"})
NAV_CHOICES = ("next", "back", "review")


def patient_actor(patient_id: int) -> Actor:
    return Actor("patient", str(patient_id))


# --------------------------------------------------------------------------------------------
# The link


@dataclass(frozen=True)
class Link:
    """What the patient pages need of the assessment behind a link (read-only).

    Read with one SELECT of plain columns: a questionnaire request never loads ORM objects,
    whose construction cost more than everything else of a screen together. The few requests
    that change the assessment or the patient beyond the answers (submit, opt-out) load them by
    ``assessment_id`` / ``patient_id``.
    """

    assessment_id: int
    status: str
    window_opens: date
    window_closes: date
    completed_at: datetime | None
    instruments: tuple[str, ...]
    patient_id: int
    site_id: int
    patient_status: str
    patient_language: str
    opted_out: bool
    time_zone: str


_assessments = cast(Table, Assessment.__table__)
_patients = cast(Table, Patient.__table__)
_sites = cast(Table, Site.__table__)
#: The link's columns, labelled as the fields of Link, and the token hash to compare.
_FIND_LINK = (
    select(
        _assessments.c.id.label("assessment_id"),
        _assessments.c.status,
        _assessments.c.window_opens,
        _assessments.c.window_closes,
        _assessments.c.completed_at,
        _assessments.c.instruments,
        _patients.c.id.label("patient_id"),
        _patients.c.site_id,
        _patients.c.status.label("patient_status"),
        _patients.c.language.label("patient_language"),
        _patients.c.opted_out,
        _sites.c.time_zone,
        _assessments.c.token_hash,
    )
    .select_from(
        _assessments.join(_patients, _patients.c.id == _assessments.c.patient_id).join(
            _sites, _sites.c.id == _patients.c.site_id
        )
    )
    .where(_assessments.c.token_hash == bindparam("token_hash"))
)


_LINK_FIELDS = tuple(_FIND_LINK.selected_columns.keys())[:-1]


def open_link(connection: Connection, *, token: str) -> Link | None:
    """The link carrying ``token``, whatever its assessment's state; None if there is none.

    It is looked up by the SHA-256 of the token (unique index), then compared in constant time.
    Nothing is counted here: only a failed look-up counts against the client's limit (the
    caller's :func:`count_failed_lookup`), so a patient's own pages are never limited.
    """
    if not _TOKEN_SHAPE.match(token):
        return None
    wanted = hash_token(token)
    row = connection.execute(_FIND_LINK, {"token_hash": wanted}).first()
    if row is None:
        return None
    *fields, token_hash = row
    if token_hash is None or not hmac.compare_digest(token_hash.encode(), wanted.encode()):
        return None
    values = dict(zip(_LINK_FIELDS, fields, strict=True))
    values["instruments"] = tuple(values["instruments"])  # a JSON list in the database
    return Link(**values)


def count_failed_lookup(
    connection: Connection, *, now: datetime, bucket: str, limit: rate_limit.Limit
) -> rate_limit.Decision:
    """Count a request whose token names no link (guessing, or a mistyped link) against the
    client's limit; ``connection`` in autocommit mode, so the count outlives the request."""
    return rate_limit.hit(connection, now=now, bucket=bucket, limit=limit)


def accepts_answers(link: Link, now: datetime) -> bool:
    """True while the link may be used: open or started, and today (site time) in the window.

    The scheduler expires assessments later; the page does not wait for it.
    """
    if link.status not in OPEN_STATES:
        return False
    if link.patient_status not in FOLLOWED_STATUSES:
        return False
    today = today_in(link.time_zone, now)
    return link.window_opens <= today <= link.window_closes


# --------------------------------------------------------------------------------------------
# Screens and progress


@dataclass(frozen=True)
class FlowScreen:
    number: int  # 1-based across the whole assessment
    instrument: Instrument
    screen: Screen

    @property
    def items(self) -> tuple[int, ...]:
        return self.screen.items


@dataclass(frozen=True)
class Flow:
    screens: tuple[FlowScreen, ...]

    @property
    def total(self) -> int:
        return len(self.screens)

    def screen(self, number: int) -> FlowScreen | None:
        if 1 <= number <= self.total:
            return self.screens[number - 1]
        return None

    def resume_at(self, answers: Mapping[int, int]) -> int | None:
        """The first screen with no saved answer at all; None when every screen has one."""
        for flow_screen in self.screens:
            if not any(item in answers for item in flow_screen.items):
                return flow_screen.number
        return None

    def unanswered(self, answers: Mapping[int, int]) -> list[tuple[FlowScreen, list[int]]]:
        """Per screen, the items without an answer (screens with none left out)."""
        out = []
        for flow_screen in self.screens:
            missing = [item for item in flow_screen.items if item not in answers]
            if missing:
                out.append((flow_screen, missing))
        return out

    @cached_property
    def instruments(self) -> tuple[Instrument, ...]:
        """The instruments shown, in order (worked out once: every page asks for them)."""
        seen: dict[str, Instrument] = {}
        for flow_screen in self.screens:
            seen.setdefault(flow_screen.instrument.key, flow_screen.instrument)
        return tuple(seen.values())

    @cached_property
    def key(self) -> tuple[str, ...]:
        """The instruments' keys ("qlq-c30:3.0", ...): the same for every flow of the same
        questionnaire, so what its pages show alike is kept under it."""
        return tuple(instrument.key for instrument in self.instruments)


def build_flow(instruments: Iterable[Instrument]) -> Flow:
    screens: list[FlowScreen] = []
    for instrument in instruments:
        for screen in instrument.screens:
            screens.append(FlowScreen(len(screens) + 1, instrument, screen))
    return Flow(tuple(screens))


def flow_for(link: Link, registry: InstrumentRegistry) -> Flow:
    """The screens of the link's assessment, its instruments in the order the schedule gave."""
    return build_flow(instruments_named(link.instruments, registry))


# --------------------------------------------------------------------------------------------
# Reading one screen's form


class AnswerFormError(ValueError):
    """A screen's form that cannot be saved as sent. ``problem`` names what is wrong.

    Problems: ``wrong_screen`` (the form names another screen), ``unknown_item`` (an item
    that is not on this screen of this assessment), ``bad_code`` (not one of the item's
    answers), ``repeated`` (one item answered twice), ``unexpected_field``, ``bad_navigation``.
    """

    def __init__(self, problem: str, item: int | None = None) -> None:
        self.problem = problem
        self.item = item
        super().__init__(f"{problem}" + (f" (item {item})" if item is not None else ""))


@dataclass(frozen=True)
class ScreenForm:
    answers: dict[int, int]
    nav: str


def read_screen_form(flow_screen: FlowScreen, form: Mapping[str, Sequence[str]]) -> ScreenForm:
    """Check a posted screen completely; raise AnswerFormError before anything is saved.

    ``form`` maps each field name to all its values (``MultiDict.to_dict(flat=False)``).
    Items left unanswered are simply absent: EORTC allows missing items.
    """
    screen_values = form.get("screen", [])
    if list(screen_values) != [str(flow_screen.number)]:
        raise AnswerFormError("wrong_screen")
    nav_values = list(form.get("nav", ["next"]))
    if len(nav_values) != 1 or nav_values[0] not in NAV_CHOICES:
        raise AnswerFormError("bad_navigation")
    answers: dict[int, int] = {}
    for name, values in form.items():
        if name in CONTROL_FIELDS:
            continue
        match = _ITEM_FIELD.match(name)
        if match is None:
            raise AnswerFormError("unexpected_field")
        item = int(match.group(1))
        if item not in flow_screen.items:
            raise AnswerFormError("unknown_item", item)
        if len(values) != 1:
            raise AnswerFormError("repeated", item)
        if not _CODE_VALUE.match(values[0]):
            raise AnswerFormError("bad_code", item)
        answers[item] = int(values[0])
    try:
        validate_answers(flow_screen.instrument, answers)
    except InvalidAnswerError as exc:
        raise AnswerFormError("bad_code", exc.item) from exc
    return ScreenForm(answers=answers, nav=nav_values[0])


def save_screen(
    connection: Connection,
    *,
    now: datetime,
    link: Link,
    flow_screen: FlowScreen,
    language: str,
    answers: Mapping[int, int],
) -> None:
    """Store the answers given on one screen (answers not sent are left as they were), in the
    connection's transaction; the caller commits.

    Answers equal to the stored ones are not written again (moving back and forth re-sends them),
    so re-sending a screen writes nothing. When something was written, the assessment is marked
    started with a conditional UPDATE, which waits for the row's lock and checks, at that moment,
    that the assessment still takes answers: if a completion or an expiry happened since the
    link was looked up, AssessmentClosed is raised and the caller rolls the answers back.
    """
    validate_answers(flow_screen.instrument, answers)
    if answers:
        store_answers_taken(
            connection,
            now=now,
            assessment_id=link.assessment_id,
            instrument=flow_screen.instrument,
            language=language,
            answers=answers,
        )


def answers_of(connection: Connection, link: Link) -> dict[int, int]:
    """Every stored answer of the link's assessment: item number -> code."""
    return stored_answers(connection, link.assessment_id)


def submit(
    session: Session,
    *,
    now: datetime,
    link: Link,
    registry: InstrumentRegistry,
    language: str,
) -> bool:
    """Complete the assessment and store its scores in this transaction; False if already done.

    Everything the completion needs is in the link: no ORM object is loaded (loading the
    assessment and its patient cost about a fifth of a submit's CPU)."""
    return complete_by_id(
        session,
        now=now,
        assessment_id=link.assessment_id,
        instruments=instruments_named(link.instruments, registry),
        site_id=link.site_id,
        language=language,
        actor=patient_actor(link.patient_id),
    )


# --------------------------------------------------------------------------------------------
# Opting out of messages from the page


def opt_out(session: Session, *, now: datetime, patient_id: int) -> int:
    """Stop further messages to the patient; return how many pending messages were cancelled.

    Only staff can undo it. Doing it twice changes nothing the second time.
    """
    patient = session.get_one(Patient, patient_id)
    if patient.opted_out:
        return 0
    patient.opted_out = True
    patient.opted_out_at = now
    patient.updated_at = now
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.patient_id == patient.id,
            OutboxMessage.status == MessageStatus.PENDING.value,
        )
        .values(status=MessageStatus.CANCELLED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    cancelled = int(result.rowcount)  # type: ignore[attr-defined]
    record(
        session,
        now=now,
        actor=patient_actor(patient.id),
        action="patient.opted_out",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before={"opted_out": False},
        after={"opted_out": True, "via": "questionnaire page", "messages_cancelled": cancelled},
    )
    session.flush()
    return cancelled


# --------------------------------------------------------------------------------------------
# Several time points open on the same day


@dataclass(frozen=True)
class NextQuestionnaire:
    """Another questionnaire of the same patient waiting today: where the thank-you page leads
    on (one SMS announced both; messaging/outbox.py)."""

    timepoint: str
    token: str


#: Another open time point of the patient, open today: the earliest due first.
_NEXT_OPEN_TODAY = (
    select(_assessments.c.timepoint, _assessments.c.token_encrypted)
    .where(
        _assessments.c.patient_id == bindparam("p_patient"),
        _assessments.c.id != bindparam("p_assessment"),
        one_of(_assessments.c.status, OPEN_STATES),
        _assessments.c.window_opens <= bindparam("p_today"),
        _assessments.c.window_closes >= bindparam("p_today"),
        _assessments.c.token_encrypted.is_not(None),
    )
    .order_by(_assessments.c.due_date, _assessments.c.id)
    .limit(1)
)


def next_questionnaire(
    connection: Connection, *, now: datetime, link: Link, vault: Vault
) -> NextQuestionnaire | None:
    """The patient's next time point open today (earliest due first), other than ``link``'s;
    None when there is none. Its link is the one its own reminders repeat."""
    if link.patient_status not in FOLLOWED_STATUSES:
        return None
    row = connection.execute(
        _NEXT_OPEN_TODAY,
        {
            "p_patient": link.patient_id,
            "p_assessment": link.assessment_id,
            "p_today": today_in(link.time_zone, now),
        },
    ).first()
    if row is None:
        return None
    return NextQuestionnaire(timepoint=row.timepoint, token=vault.decrypt(row.token_encrypted))
