"""Storing answers and completing an assessment with its scores, in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..instruments import (
    ALGORITHM_VERSION,
    Instrument,
    InstrumentRegistry,
    score_instrument,
    validate_answers,
)
from ..models import Assessment, AssessmentStatus, Response, Score
from .assessments import close_link
from .messaging import cancel_pending_messages


class AssessmentClosed(Exception):
    """Answers arrived for an assessment that no longer accepts them."""


def instruments_of(assessment: Assessment, registry: InstrumentRegistry) -> list[Instrument]:
    out = []
    for ref in assessment.instruments:
        instrument_id, version = ref.split(":", 1)
        out.append(registry.get(instrument_id, version))
    return out


def stored_answers(session: Session, assessment: Assessment) -> dict[int, int]:
    rows = session.execute(
        select(Response.item_number, Response.code).where(Response.assessment_id == assessment.id)
    )
    return {item: code for item, code in rows}


def answer_languages(session: Session, assessment_ids: list[int]) -> dict[tuple[int, str], str]:
    """(assessment id, instrument id) -> the language of those answers, for their scores.

    A patient may switch language part way through an instrument: the first in language order.
    """
    rows = session.execute(
        select(Response.assessment_id, Response.instrument_id, func.min(Response.language))
        .where(Response.assessment_id.in_(assessment_ids))
        .group_by(Response.assessment_id, Response.instrument_id)
    )
    return {(a_id, instrument_id): language for a_id, instrument_id, language in rows}


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
    if assessment.status not in (AssessmentStatus.OPEN.value, AssessmentStatus.IN_PROGRESS.value):
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


def _upsert_statement(insert: Any) -> Any:
    """One statement for any number of answers (sent as one batch), compiled once and cached."""
    statement = insert(Response.__table__)
    return statement.on_conflict_do_update(
        index_elements=["assessment_id", "item_number"],
        set_={
            "code": statement.excluded.code,
            "language": statement.excluded.language,
            "answered_at": statement.excluded.answered_at,
        },
    )


_UPSERT = {
    "postgresql": _upsert_statement(postgresql.insert),
    "sqlite": _upsert_statement(sqlite.insert),
}


def _upsert(
    session: Session,
    *,
    now: datetime,
    assessment: Assessment,
    instrument: Instrument,
    language: str,
    answers: Mapping[int, int],
) -> None:
    """Insert the answers, or overwrite code, language and time of those already stored."""
    dialect = session.get_bind().dialect.name
    session.execute(
        _UPSERT[dialect if dialect in _UPSERT else "sqlite"],
        [
            {
                "assessment_id": assessment.id,
                "instrument_id": instrument.id,
                "instrument_version": instrument.version,
                "language": language,
                "item_number": item_number,
                "code": code,
                "answered_at": now,
            }
            for item_number, code in sorted(answers.items())
        ],
    )
    # The statement bypasses the unit of work: answers already loaded into this session (one by
    # one or as ``assessment.responses``) are reloaded when next read.
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
) -> list[Score]:
    """(Re)compute and store every scale score of the assessment from its stored answers."""
    answers = stored_answers(session, assessment)
    languages = answer_languages(session, [assessment.id])
    session.execute(delete(Score).where(Score.assessment_id == assessment.id))
    scores = []
    for instrument in instruments_of(assessment, registry):
        for scale_score in score_instrument(instrument, answers).values():
            score = Score(
                assessment_id=assessment.id,
                instrument_id=instrument.id,
                instrument_version=instrument.version,
                scale=scale_score.code,
                value=scale_score.value,
                items_in_scale=scale_score.items_in_scale,
                items_answered=scale_score.items_answered,
                algorithm_version=ALGORITHM_VERSION,
                computed_at=now,
                language=languages.get((assessment.id, instrument.id)),
            )
            session.add(score)
            scores.append(score)
    session.flush()
    return scores


def complete_assessment(
    session: Session,
    *,
    now: datetime,
    assessment: Assessment,
    registry: InstrumentRegistry,
    language: str,
    actor: Actor,
) -> bool:
    """Mark the assessment completed and store its scores. Returns False if it already was.

    The status change is a conditional UPDATE, so two simultaneous submits complete it once.
    """
    from sqlalchemy import update

    result = session.execute(
        update(Assessment)
        .where(
            Assessment.id == assessment.id,
            Assessment.status.in_(
                (AssessmentStatus.OPEN.value, AssessmentStatus.IN_PROGRESS.value)
            ),
        )
        .values(
            status=AssessmentStatus.COMPLETED.value,
            completed_at=now,
            closed_at=now,
            updated_at=now,
            language=language,
            token_encrypted=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.refresh(assessment)
    close_link(assessment)
    # No reminder after completion: the ones still waiting are cancelled here (dispatch checks
    # again just before sending).
    cancel_pending_messages(
        session, now=now, assessment_ids=[assessment.id], reason="time point completed"
    )
    compute_scores(session, now=now, assessment=assessment, registry=registry)
    record(
        session,
        now=now,
        actor=actor,
        action="assessment.completed",
        object_type="assessment",
        object_id=assessment.id,
        site_id=assessment.patient.site_id,
        after={"timepoint": assessment.timepoint, "language": language},
    )
    return True
