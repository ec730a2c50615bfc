"""Re-scoring: recompute stored scores from the stored answers with the current algorithm.

Used when the scoring algorithm or an instrument's scale definition (e.g. a scale's direction)
changes. Completed assessments are processed in batches of ids; a score counts as *changed* when
its value differs by more than ``TOLERANCE`` (or appears, disappears, or changes between missing
and present) or its item counts differ. Every score row touched gets the current algorithm
version. Running it twice changes nothing the second time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..instruments import ALGORITHM_VERSION, InstrumentRegistry, score_instrument
from ..models import Assessment, AssessmentStatus, Response, Score
from .responses import answer_languages

TOLERANCE = 1e-9
BATCH_SIZE = 500


@dataclass(frozen=True)
class RescoreReport:
    assessments_checked: int
    assessments_changed: int
    scores_changed: int
    scores_restamped: int  # same value, algorithm version updated
    algorithm_version: str
    dry_run: bool

    def summary(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        text = (
            f"{self.scores_changed} scores {verb} in {self.assessments_changed} assessments "
            f"({self.assessments_checked} completed assessments checked; "
            f"algorithm {self.algorithm_version})."
        )
        if self.scores_restamped:
            text += (
                f" {self.scores_restamped} unchanged scores "
                f"{'would be' if self.dry_run else 'were'} stamped with the current algorithm."
            )
        return text


def _differs(old: float | None, new: float | None) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None)
    return abs(old - new) > TOLERANCE


def rescore(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    registry: InstrumentRegistry,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
) -> RescoreReport:
    """Recompute every completed assessment's scores; flush, and audit the run (unless dry)."""
    checked = changed_assessments = changed_scores = restamped = 0
    last_id = 0
    while True:
        batch = session.execute(
            select(Assessment.id, Assessment.instruments)
            .where(Assessment.status == AssessmentStatus.COMPLETED.value, Assessment.id > last_id)
            .order_by(Assessment.id)
            .limit(batch_size)
        ).all()
        if not batch:
            break
        last_id = batch[-1][0]
        ids = [a_id for a_id, _ in batch]
        answers: dict[int, dict[int, int]] = defaultdict(dict)
        for a_id, item, code in session.execute(
            select(Response.assessment_id, Response.item_number, Response.code).where(
                Response.assessment_id.in_(ids)
            )
        ):
            answers[a_id][item] = code
        languages = answer_languages(session, ids)
        stored: dict[int, dict[str, Score]] = defaultdict(dict)
        for score in session.scalars(select(Score).where(Score.assessment_id.in_(ids))):
            stored[score.assessment_id][score.scale] = score

        for a_id, refs in batch:
            checked += 1
            n_changed = 0
            old_scores = stored.get(a_id, {})
            seen: set[str] = set()
            for ref in refs:
                instrument = registry.by_key(ref)
                for new in score_instrument(instrument, answers.get(a_id, {})).values():
                    seen.add(new.code)
                    old = old_scores.get(new.code)
                    if old is None:
                        n_changed += 1
                        if not dry_run:
                            session.add(
                                Score(
                                    assessment_id=a_id,
                                    instrument_id=instrument.id,
                                    instrument_version=instrument.version,
                                    scale=new.code,
                                    value=new.value,
                                    items_in_scale=new.items_in_scale,
                                    items_answered=new.items_answered,
                                    algorithm_version=ALGORITHM_VERSION,
                                    computed_at=now,
                                    language=languages.get((a_id, instrument.id)),
                                )
                            )
                        continue
                    differs = (
                        _differs(old.value, new.value)
                        or old.items_in_scale != new.items_in_scale
                        or old.items_answered != new.items_answered
                    )
                    if differs:
                        n_changed += 1
                    elif old.algorithm_version != ALGORITHM_VERSION:
                        restamped += 1
                    else:
                        continue
                    if not dry_run:
                        session.execute(
                            update(Score)
                            .where(Score.id == old.id)
                            .values(
                                value=new.value if differs else old.value,
                                items_in_scale=new.items_in_scale,
                                items_answered=new.items_answered,
                                algorithm_version=ALGORITHM_VERSION,
                                computed_at=now,
                                language=languages.get((a_id, instrument.id)),
                            )
                            .execution_options(synchronize_session=False)
                        )
            gone = [s.id for code, s in old_scores.items() if code not in seen]
            n_changed += len(gone)
            if gone and not dry_run:
                session.execute(delete(Score).where(Score.id.in_(gone)))
            if n_changed:
                changed_assessments += 1
                changed_scores += n_changed
        session.flush()
    session.expire_all()  # score objects loaded above may hold values replaced by UPDATE

    report = RescoreReport(
        checked, changed_assessments, changed_scores, restamped, ALGORITHM_VERSION, dry_run
    )
    if not dry_run:
        record(
            session,
            now=now,
            actor=actor,
            action="scores.rescored",
            object_type="score",
            after={
                "assessments_checked": checked,
                "assessments_changed": changed_assessments,
                "scores_changed": changed_scores,
                "scores_restamped": restamped,
                "algorithm_version": ALGORITHM_VERSION,
            },
        )
        session.flush()
    return report
