"""Storing answers and completing an assessment with its scores, in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    String,
    Table,
    bindparam,
    column,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..audit import Actor, record, record_now
from ..db import one_of
from ..instruments import (
    ALGORITHM_VERSION,
    Instrument,
    InstrumentRegistry,
    ScaleScore,
    score_instrument,
    validate_answers,
)
from ..messaging.outbox import cancel_pending_messages
from ..models import AnswerMode, Assessment, AssessmentStatus, Response, Score, UTCDateTime
from ..scheduling.assessments import OPEN_STATES, close_link


class AssessmentClosed(Exception):
    """Answers arrived for an assessment that no longer accepts them."""


_responses = cast(Table, Response.__table__)
_K = TypeVar("_K")
_STORED_ANSWERS = select(_responses.c.item_number, _responses.c.code).where(
    _responses.c.assessment_id == bindparam("p_assessment")
)
#: The answers with their instrument and language, for scoring.
_ANSWERS_TO_SCORE = select(
    _responses.c.item_number,
    _responses.c.code,
    _responses.c.instrument_id,
    _responses.c.language,
).where(_responses.c.assessment_id == bindparam("p_assessment"))


def instruments_of(assessment: Assessment, registry: InstrumentRegistry) -> list[Instrument]:
    return instruments_named(assessment.instruments, registry)


def instruments_named(refs: Iterable[str], registry: InstrumentRegistry) -> list[Instrument]:
    """The instruments of an assessment's ``instruments`` column ("qlq-c30:3.0", ...), in order."""
    out = []
    for ref in refs:
        instrument_id, version = ref.split(":", 1)
        out.append(registry.get(instrument_id, version))
    return out


def stored_answers(session: Session | Connection, assessment_id: int) -> dict[int, int]:
    """Every stored answer of the assessment: item number -> code."""
    connection = session.connection() if isinstance(session, Session) else session
    rows = connection.execute(_STORED_ANSWERS, {"p_assessment": assessment_id})
    return dict(rows.all())


def answer_languages(session: Session, assessment_ids: list[int]) -> dict[tuple[int, str], str]:
    """(assessment id, instrument id) -> the language of those answers, for their scores.

    A patient may switch language part way through an instrument: see :func:`_score_languages`.
    """
    rows = session.execute(
        select(Response.assessment_id, Response.instrument_id, Response.language)
        .where(Response.assessment_id.in_(assessment_ids))
        .distinct()
    )
    return _score_languages(
        ((a_id, instrument_id), language) for a_id, instrument_id, language in rows
    )


def _score_languages(answered: Iterable[tuple[_K, str]]) -> dict[_K, str]:
    """The language of each group's answers, for their scores: where a patient switched
    language part way through an instrument, the first in language order. ``answered``:
    (group, language) of each answer."""
    chosen: dict[_K, str] = {}
    for group, language in answered:
        if group not in chosen or language < chosen[group]:
            chosen[group] = language
    return chosen


def save_answers(
    session: Session,
    *,
    now: datetime,
    assessment: Assessment,
    instrument: Instrument,
    language: str,
    answers: Mapping[int, int | None],
) -> None:
    """Store (or clear, with None) answers to items of one instrument.

    Every code is validated before anything is written.
    """
    if assessment.status not in OPEN_STATES:
        raise AssessmentClosed(f"assessment {assessment.id} is {assessment.status}")
    validate_answers(instrument, answers)
    if assessment.id is None:
        session.flush()  # a new assessment needs its id before its answers can refer to it
    cleared = sorted(item for item, code in answers.items() if code is None)
    given = {item: code for item, code in answers.items() if code is not None}
    # A fixed number of statements whatever the number of answers: one DELETE for the cleared
    # ones, one INSERT .. ON CONFLICT DO UPDATE for the others.
    if cleared:
        session.execute(
            delete(Response).where(
                Response.assessment_id == assessment.id, Response.item_number.in_(cleared)
            )
        )
    if given:
        _upsert(
            session,
            now=now,
            assessment=assessment,
            instrument=instrument,
            language=language,
            answers=given,
        )
    if assessment.status == AssessmentStatus.OPEN.value:
        assessment.status = AssessmentStatus.IN_PROGRESS.value
        assessment.started_at = now
    assessment.updated_at = now
    session.flush()


def _upsert_statement(insert: Any, *, changed_only: bool) -> Any:
    """One statement for any number of answers (sent as one batch), compiled once and cached.

    ``changed_only``: an answer already stored with the same code is left as it is (its time
    and language too), and the statement returns the item numbers it did write.
    """
    statement = insert(_responses)
    table = _responses.c
    statement = statement.on_conflict_do_update(
        index_elements=["assessment_id", "item_number"],
        set_={
            "code": statement.excluded.code,
            "language": statement.excluded.language,
            "answered_at": statement.excluded.answered_at,
        },
        where=(table.code != statement.excluded.code) if changed_only else None,
    )
    return statement.returning(table.item_number) if changed_only else statement


_UPSERT = {
    "postgresql": _upsert_statement(postgresql.insert, changed_only=False),
    "sqlite": _upsert_statement(sqlite.insert, changed_only=False),
}
#: PostgreSQL stores a screen with ``_STORE_TAKEN_POSTGRESQL`` instead.
_UPSERT_CHANGED_SQLITE = _upsert_statement(sqlite.insert, changed_only=True)


def _answer_rows(
    *,
    now: datetime,
    assessment_id: int,
    instrument: Instrument,
    language: str,
    answers: Mapping[int, int],
) -> list[dict[str, Any]]:
    return [
        {
            "assessment_id": assessment_id,
            "instrument_id": instrument.id,
            "instrument_version": instrument.version,
            "language": language,
            "item_number": item_number,
            "code": code,
            "answered_at": now,
        }
        for item_number, code in sorted(answers.items())
    ]


def store_answers_taken(
    connection: Connection,
    *,
    now: datetime,
    assessment_id: int,
    instrument: Instrument,
    language: str,
    answers: Mapping[int, int],
) -> None:
    """Store the patient's answers if the assessment still takes them, in one transaction.

    Answers new or different from the stored code are written, and the assessment is marked
    started (open becomes in progress). An answer sent again unchanged keeps its stored time and
    language, and if nothing changed nothing at all is written.

    The status is checked by the UPDATE itself, which waits for the assessment row's lock and
    looks at the row as it is then: if a completion or an expiry committed since the caller read
    the assessment, AssessmentClosed is raised and the caller must roll back, so no answer can
    be stored after the assessment closed.

    PostgreSQL: one statement (the answers as arrays, the UPDATE as a second CTE), one round
    trip. Elsewhere: an upsert returning what it wrote, then the UPDATE.
    """
    if connection.dialect.name == "postgresql":
        items = sorted(answers)
        written, started = connection.execute(
            _STORE_TAKEN_POSTGRESQL,
            {
                "p_assessment": assessment_id,
                "p_instrument": instrument.id,
                "p_version": instrument.version,
                "p_language": language,
                "p_items": items,
                "p_codes": [answers[item] for item in items],
                "p_now": now,
            },
        ).one()
    else:
        rows = _answer_rows(
            now=now,
            assessment_id=assessment_id,
            instrument=instrument,
            language=language,
            answers=answers,
        )
        written = len(connection.execute(_UPSERT_CHANGED_SQLITE, rows).all())
        started = 0
        if written:
            parameters = {"p_assessment": assessment_id, "p_now": now}
            started = connection.execute(_MARK_STARTED, parameters).rowcount
    if written and started != 1:
        raise AssessmentClosed(f"assessment {assessment_id} no longer takes answers")


_assessments = cast(Table, Assessment.__table__)


def _mark_started(written: Any = None) -> Any:
    """Open becomes in progress (started now), in progress stays so; no row if neither."""
    condition = [
        _assessments.c.id == bindparam("p_assessment"),
        one_of(
            _assessments.c.status,
            OPEN_STATES,
        ),
    ]
    if written is not None:
        condition.append(exists(select(literal(1)).select_from(written)))
    return (
        update(_assessments)
        .where(*condition)
        .values(
            status=AssessmentStatus.IN_PROGRESS.value,
            started_at=func.coalesce(_assessments.c.started_at, bindparam("p_now")),
            updated_at=bindparam("p_now"),
        )
    )


class _Column(NamedTuple):
    """A column of an INSERT from parameters: ``per_row`` takes one value per row from an array
    parameter, otherwise one parameter holds the value of every row."""

    name: str
    parameter: str
    type_: Any
    per_row: bool = False


def _insert_from_arrays(insert: Any, columns: Sequence[_Column]) -> Any:
    """``insert`` (an INSERT into one table) of rows made from parameters, on PostgreSQL:
    ``INSERT ... SELECT :p, given.a, ... FROM unnest(:p_a, ...) AS given(a, ...)``, one
    statement of the same text for any number of rows."""
    per_row = [column for column in columns if column.per_row]
    given = (
        func.unnest(*(bindparam(c.parameter, type_=postgresql.ARRAY(c.type_)) for c in per_row))
        .table_valued(*(c.name for c in per_row))
        .render_derived(name="given")
    )
    return insert.from_select(
        [column.name for column in columns],
        select(
            *(
                given.c[c.name] if c.per_row else bindparam(c.parameter, type_=c.type_)
                for c in columns
            )
        ).select_from(given),
    )


def _store_taken_postgresql() -> Any:
    insert = _insert_from_arrays(
        postgresql.insert(_responses),
        (
            _Column("assessment_id", "p_assessment", Integer()),
            _Column("instrument_id", "p_instrument", String()),
            _Column("instrument_version", "p_version", String()),
            _Column("language", "p_language", String()),
            _Column("item_number", "p_items", Integer(), per_row=True),
            _Column("code", "p_codes", Integer(), per_row=True),
            _Column("answered_at", "p_now", UTCDateTime()),
        ),
    )
    written = (
        insert.on_conflict_do_update(
            index_elements=["assessment_id", "item_number"],
            set_={
                "code": insert.excluded.code,
                "language": insert.excluded.language,
                "answered_at": insert.excluded.answered_at,
            },
            where=_responses.c.code != insert.excluded.code,
        )
        .returning(_responses.c.item_number)
        .cte("written")
    )
    started = _mark_started(written).returning(_assessments.c.id).cte("started")
    return select(
        select(func.count()).select_from(written).scalar_subquery(),
        select(func.count()).select_from(started).scalar_subquery(),
    )


_MARK_STARTED = _mark_started()
_STORE_TAKEN_POSTGRESQL = _store_taken_postgresql()


def _upsert(
    session: Session,
    *,
    now: datetime,
    assessment: Assessment,
    instrument: Instrument,
    language: str,
    answers: Mapping[int, int],
) -> None:
    """Insert the answers, or overwrite code, language and time of those already stored.

    One statement for any number of answers. It bypasses the unit of work: answers already
    loaded into this session (one by one or as ``assessment.responses``) are reloaded when next
    read.
    """
    dialect = session.get_bind().dialect.name
    session.execute(
        _UPSERT[dialect if dialect in _UPSERT else "sqlite"],
        _answer_rows(
            now=now,
            assessment_id=assessment.id,
            instrument=instrument,
            language=language,
            answers=answers,
        ),
    )
    if "responses" in assessment.__dict__:
        session.expire(assessment, ["responses"])
    for obj in list(session.identity_map.values()):
        if (
            isinstance(obj, Response)
            and obj.assessment_id == assessment.id
            and obj.item_number in answers
        ):
            session.expire(obj)


def compute_scores(
    session: Session, *, now: datetime, assessment: Assessment, registry: InstrumentRegistry
) -> list[ScaleScore]:
    """(Re)compute and store every scale score of the assessment from its stored answers
    (:func:`store_scores`); returns the scores stored. ``assessment.scores``, if loaded, is
    reloaded when next read, and score objects of the old rows leave the session."""
    scores = store_scores(
        session.connection(),
        now=now,
        assessment_id=assessment.id,
        instruments=instruments_of(assessment, registry),
    )
    _forget_scores(session, assessment.id, assessment)
    return scores


def store_scores(
    connection: Connection,
    *,
    now: datetime,
    assessment_id: int,
    instruments: Sequence[Instrument],
) -> list[ScaleScore]:
    """(Re)compute and store every scale score of the assessment's ``instruments`` from its
    stored answers; returns the scores stored.

    The old rows are deleted and the new ones inserted with a statement whose text does not
    depend on the number of scores (a multi-row INSERT of some 30 scores is a long statement
    that the database driver parses again on every completion): on PostgreSQL one INSERT of
    the scores as one JSON document (:func:`_insert_scores_postgresql`), elsewhere one short
    statement run for each score (``executemany``). Past any ORM session: see
    :func:`compute_scores`.
    """
    stored = connection.execute(_ANSWERS_TO_SCORE, {"p_assessment": assessment_id}).all()
    answers = {item_number: code for item_number, code, _i, _l in stored}
    languages = _score_languages(
        (instrument_id, language) for _n, _c, instrument_id, language in stored
    )
    connection.execute(_DELETE_SCORES, {"p_assessment": assessment_id})
    scores: list[ScaleScore] = []
    rows: list[dict[str, Any]] = []  # each score's own columns (_SCORE_FIELDS)
    for instrument in instruments:
        language = languages.get(instrument.id)
        for scale_score in score_instrument(instrument, answers).values():
            scores.append(scale_score)
            rows.append(
                {
                    "instrument_id": instrument.id,
                    "instrument_version": instrument.version,
                    "scale": scale_score.code,
                    "value": scale_score.value,
                    "items_in_scale": scale_score.items_in_scale,
                    "items_answered": scale_score.items_answered,
                    "language": language,
                }
            )
    if not rows:
        return scores
    if connection.dialect.name == "postgresql":
        connection.execute(
            _INSERT_SCORES_POSTGRESQL,
            {
                "p_assessment": assessment_id,
                "p_algorithm": ALGORITHM_VERSION,
                "p_now": now,
                "p_scores": rows,
            },
        )
    else:
        shared = {
            "assessment_id": assessment_id,
            "algorithm_version": ALGORITHM_VERSION,
            "computed_at": now,
        }
        connection.execute(_scores.insert(), [row | shared for row in rows])
    return scores


def _forget_scores(session: Session, assessment_id: int, assessment: Assessment | None) -> None:
    """After the assessment's scores were replaced past the session: the objects of the old
    rows leave it, and ``assessment.scores``, if loaded, is read again when next used."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Score) and obj.assessment_id == assessment_id:
            session.expunge(obj)
    if assessment is not None and "scores" in assessment.__dict__:
        session.expire(assessment, ["scores"])


_scores = cast(Table, Score.__table__)
_DELETE_SCORES = delete(_scores).where(_scores.c.assessment_id == bindparam("p_assessment"))

#: The per-score columns, sent to PostgreSQL as the fields of one JSON object per score.
_SCORE_FIELDS: tuple[tuple[str, Any], ...] = (
    ("instrument_id", String()),
    ("instrument_version", String()),
    ("scale", String()),
    ("value", Float(precision=53)),
    ("items_in_scale", Integer()),
    ("items_answered", Integer()),
    ("language", String()),
)


def _insert_scores_postgresql() -> Any:
    """All of an assessment's scores in one INSERT of the same text whatever their number: the
    scores as one JSON array of objects, taken apart with ``json_to_recordset``.

    Sent as one statement run per score (``executemany``), the 30 or so scores of a completion
    were 30 executions: 1.6 ms of a 9.4 ms submit, measured in-process. As seven arrays, one
    per column, the driver built each array element by element: about 0.6 ms of Python per
    completion for the INSERT and the DELETE before it, against about 0.45 ms with the one JSON
    document (which ``json`` writes in C; PostgreSQL's CPU for the INSERT fell too). Floats
    keep their value: ``json`` writes the shortest text that reads back as the same double.
    """
    given = (
        func.json_to_recordset(bindparam("p_scores", type_=postgresql.JSON()))
        .table_valued(*(column(name, type_) for name, type_ in _SCORE_FIELDS))
        .render_derived(name="given", with_types=True)
    )
    return _scores.insert().from_select(
        [
            "assessment_id",
            *(name for name, _type in _SCORE_FIELDS),
            "algorithm_version",
            "computed_at",
        ],
        select(
            bindparam("p_assessment", type_=Integer()),
            *(given.c[name] for name, _type in _SCORE_FIELDS),
            bindparam("p_algorithm", type_=String()),
            bindparam("p_now", type_=UTCDateTime()),
        ).select_from(given),
    )


_INSERT_SCORES_POSTGRESQL = _insert_scores_postgresql()


def settle_completed(
    session: Session,
    *,
    now: datetime,
    assessment: Assessment,
    registry: InstrumentRegistry,
    why: str,
) -> None:
    """What follows a completion of a loaded assessment (a nurse's entry): the link closes,
    the reminders still waiting are cancelled (dispatch checks again just before sending), and
    the scores are computed from the stored answers. The patient's submit does the same in
    :func:`complete_by_id`."""
    close_link(assessment)
    cancel_pending_messages(session, now=now, assessment_ids=[assessment.id], reason=why)
    compute_scores(session, now=now, assessment=assessment, registry=registry)


#: What a completion writes, besides its time (``_COMPLETED_AT``) and language.
_COMPLETED = {
    "status": AssessmentStatus.COMPLETED.value,
    "token_encrypted": None,
    "next_reminder_on": None,
    "mode": AnswerMode.ELECTRONIC.value,
}
_COMPLETED_AT = ("completed_at", "closed_at", "updated_at")
#: The completion: a conditional UPDATE, so that two simultaneous submits complete it once;
#: it returns the time point, for the audit trail. Built once (an ORM UPDATE built per call
#: cost about 0.5 ms of a submit's CPU).
_COMPLETE = (
    update(_assessments)
    .where(
        _assessments.c.id == bindparam("p_assessment"),
        one_of(
            _assessments.c.status,
            OPEN_STATES,
        ),
    )
    .values(
        **_COMPLETED,
        **{name: bindparam("p_now", type_=UTCDateTime()) for name in _COMPLETED_AT},
        language=bindparam("p_language", type_=String()),
    )
    .returning(_assessments.c.timepoint)
)


def complete_assessment(
    session: Session,
    *,
    now: datetime,
    assessment: Assessment,
    registry: InstrumentRegistry,
    language: str,
    actor: Actor,
) -> bool:
    """Mark the assessment completed and store its scores (:func:`complete_by_id`); returns
    False if it already was. The object then holds what the completion wrote."""
    completed = complete_by_id(
        session,
        now=now,
        assessment_id=assessment.id,
        instruments=instruments_of(assessment, registry),
        site_id=assessment.patient.site_id,
        language=language,
        actor=actor,
    )
    if not completed:
        return False
    # The row now holds exactly these values: the object takes them without reading it back.
    values = {**_COMPLETED, **dict.fromkeys(_COMPLETED_AT, now), "language": language}
    for key, value in values.items():
        set_committed_value(assessment, key, value)
    _forget_scores(session, assessment.id, assessment)
    return True


def complete_by_id(
    session: Session,
    *,
    now: datetime,
    assessment_id: int,
    instruments: Sequence[Instrument],
    site_id: int,
    language: str,
    actor: Actor,
) -> bool:
    """Complete the assessment ``assessment_id`` in this transaction: completed and closed
    now, its link and reminders done with (as :func:`settle_completed`), its ``instruments``
    scored, the completion audited. Returns False if it was no longer open (completed by a
    simultaneous submit, or closed meanwhile): nothing is written then.

    The status change is a conditional UPDATE, so two simultaneous submits complete it once.
    Works past any ORM object of the assessment (the patient's submit loads none); use
    :func:`complete_assessment` for an assessment loaded in the session.
    """
    session.flush()  # changes still pending go first, as an ORM UPDATE would flush them
    completed = (
        session.connection()
        .execute(_COMPLETE, {"p_assessment": assessment_id, "p_now": now, "p_language": language})
        .first()
    )
    if completed is None:
        return False
    cancel_pending_messages(
        session, now=now, assessment_ids=[assessment_id], reason="time point completed"
    )
    store_scores(
        session.connection(), now=now, assessment_id=assessment_id, instruments=instruments
    )
    record_now(
        session.connection(),
        now=now,
        actor=actor,
        action="assessment.completed",
        object_type="assessment",
        object_id=assessment_id,
        site_id=site_id,
        after={"timepoint": completed.timepoint, "language": language},
    )
    return True


def score_partial(
    session: Session, *, now: datetime, assessment: Assessment, registry: InstrumentRegistry
) -> list[ScaleScore]:
    """Score a time point that closed as partial (answers, no final submit) by the same rules
    as a completed one: the EORTC half rule decides which scales have a score. Audited."""
    assessment.mode = assessment.mode or AnswerMode.ELECTRONIC.value
    scores = compute_scores(session, now=now, assessment=assessment, registry=registry)
    record(
        session,
        now=now,
        actor=Actor.system(),
        action="assessment.partial",
        object_type="assessment",
        object_id=assessment.id,
        site_id=assessment.patient.site_id,
        after={
            "timepoint": assessment.timepoint,
            "scores": sum(1 for s in scores if s.value is not None),
        },
    )
    return scores
