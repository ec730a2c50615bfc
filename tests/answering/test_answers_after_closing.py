"""Answers that arrive after the assessment closed are never stored.

A screen's POST looks its link up first and stores the answers afterwards. If another tab
submits, or the scheduler expires the time point, in between, the store must see it and refuse:
otherwise answers would be added to a completed assessment after its scores were computed.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text, update

from pro_service.answering import questionnaire
from pro_service.answering.responses import AssessmentClosed
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import Assessment, AssessmentStatus

from .helpers import stored_answers


def _open_link(token: str) -> questionnaire.Link:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        link = questionnaire.open_link(connection, token=token)
    assert link is not None
    return link


def _close_elsewhere(app, assessment_id: int, status: str) -> None:  # type: ignore[no-untyped-def]
    """What another request or the scheduler does meanwhile, in its own committed transaction."""
    with app.app_context():
        db.session.execute(
            update(Assessment).where(Assessment.id == assessment_id).values(status=status)
        )
        db.session.commit()


@pytest.mark.parametrize(
    "status", [AssessmentStatus.COMPLETED.value, AssessmentStatus.EXPIRED.value]
)
def test_answers_for_an_assessment_closed_since_the_lookup_are_refused(app, link, status):
    with app.app_context():
        registry = app.extensions["instruments"]
        seen = _open_link(link.token)
        assert seen.status == AssessmentStatus.OPEN.value
        flow = questionnaire.flow_for(seen, registry)
        first = flow.screen(1)
        assert first is not None

        # The first screen is saved while the assessment is open.
        questionnaire.save_screen(
            db.session.connection(),
            now=utcnow(),
            link=seen,
            flow_screen=first,
            language="sv",
            answers={1: 2},
        )
        db.session.commit()

        _close_elsewhere(app, link.assessment_id, status)
        with pytest.raises(AssessmentClosed):
            questionnaire.save_screen(
                db.session.connection(),
                now=utcnow(),
                link=seen,  # still says "in progress"
                flow_screen=first,
                language="sv",
                answers={1: 4, 2: 3},
            )
        db.session.rollback()
    assert stored_answers(app, link.assessment_id) == {1: 2}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # row locks
def test_answers_sent_while_a_completion_commits_wait_for_it_and_are_refused(app, link):
    """The store waits for the assessment row that a completion holds, then sees it closed."""
    engine = app.extensions["pro_db"]["engine"]
    outcome: list[object] = []

    def send_answers(seen: questionnaire.Link) -> None:
        with app.app_context():
            registry = app.extensions["instruments"]
            first = questionnaire.flow_for(seen, registry).screen(1)
            assert first is not None
            try:
                questionnaire.save_screen(
                    db.session.connection(),
                    now=utcnow(),
                    link=seen,
                    flow_screen=first,
                    language="sv",
                    answers={1: 4},
                )
                db.session.commit()
                outcome.append("stored")
            except AssessmentClosed as exc:
                db.session.rollback()
                outcome.append(exc)

    with app.app_context():
        seen = _open_link(link.token)
    with engine.connect() as completion:
        completion.execute(
            update(Assessment)
            .where(Assessment.id == link.assessment_id)
            .values(status=AssessmentStatus.COMPLETED.value)
        )  # holds the row's lock until it commits
        sender = threading.Thread(target=send_answers, args=(seen,))
        sender.start()
        _wait_until_blocked_on_a_lock(engine)
        completion.commit()
        sender.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], AssessmentClosed)
    assert stored_answers(app, link.assessment_id) == {}


def _wait_until_blocked_on_a_lock(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as watcher:
        for _ in range(300):
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO responses%'"
                )
            ).scalar_one()
            if waiting:
                return
            watcher.rollback()
            time.sleep(0.05)
    raise AssertionError("the answers were not waiting for the completion's lock")
