"""Answers that arrive after the assessment closed are never stored.

A screen's POST looks its link up first and stores the answers afterwards. If another tab
submits, or the scheduler expires the time point, in between, the store must see it and refuse:
otherwise answers would be added to a completed assessment after its scores were computed.
"""

from __future__ import annotations

import threading
import time

import pytest
from flask import current_app
from sqlalchemy import select, text, update

from pro_service.answering import questionnaire
from pro_service.answering.responses import AssessmentClosed
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import Assessment, AssessmentStatus, Score

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


def _save(connection, seen: questionnaire.Link, screen: int, answers: dict[int, int]) -> None:  # type: ignore[no-untyped-def]
    flow_screen = questionnaire.flow_for(seen, current_app.extensions["instruments"]).screen(screen)
    assert flow_screen is not None
    questionnaire.save_screen(
        connection, now=utcnow(), link=seen, flow_screen=flow_screen, language="sv", answers=answers
    )


def _send(app, seen: questionnaire.Link, screen: int, answers, outcome: list[object]) -> None:  # type: ignore[no-untyped-def]
    """A screen's POST in a request of its own: the answers saved and committed ("stored"), or
    refused (AssessmentClosed) and rolled back."""
    with app.app_context():
        try:
            _save(db.session.connection(), seen, screen, answers)
            db.session.commit()
            outcome.append("stored")
        except AssessmentClosed as exc:
            db.session.rollback()
            outcome.append(exc)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # row locks
@pytest.mark.parametrize("started", [False, True], ids=["first answers", "later answers"])
def test_answers_sent_while_a_completion_commits_wait_for_it_and_are_refused(app, link, started):
    """The store waits for the assessment row that a completion holds, then sees it closed:
    whether these are the patient's first answers (the store marks the assessment started) or
    later ones (the store only locks the row)."""
    engine = app.extensions["pro_db"]["engine"]
    outcome: list[object] = []
    if started:
        with app.app_context():
            _save(db.session.connection(), _open_link(link.token), 1, {1: 2})
            db.session.commit()

    with app.app_context():
        seen = _open_link(link.token)
    with engine.connect() as completion:
        completion.execute(
            update(Assessment)
            .where(Assessment.id == link.assessment_id)
            .values(status=AssessmentStatus.COMPLETED.value)
        )  # holds the row's lock until it commits
        sender = threading.Thread(target=_send, args=(app, seen, 1, {1: 4}, outcome))
        sender.start()
        _wait_until_blocked_on_a_lock(engine)
        completion.commit()
        sender.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], AssessmentClosed)
    assert stored_answers(app, link.assessment_id) == ({1: 2} if started else {})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # row locks
def test_a_completion_waits_for_answers_being_saved_and_scores_them(app, link):
    """A patient's second tab saves a page while the first submits: the submit waits until the
    page's answers are committed, and the scores count them."""
    engine = app.extensions["pro_db"]["engine"]
    with app.app_context():
        _save(db.session.connection(), _open_link(link.token), 1, {1: 2})
        db.session.commit()
        seen = _open_link(link.token)
    assert seen.status == AssessmentStatus.IN_PROGRESS.value
    completed: list[bool] = []

    def submit() -> None:
        with app.app_context():
            registry = app.extensions["instruments"]
            completed.append(
                questionnaire.submit(
                    db.session, now=utcnow(), link=seen, registry=registry, language="sv"
                )
            )
            db.session.commit()

    with app.app_context(), engine.connect() as saving:
        _save(saving, seen, 1, {2: 3})  # holds the assessment row until it commits
        completion = threading.Thread(target=submit)
        completion.start()
        _wait_until_blocked_on_a_lock(engine, "UPDATE assessments")
        saving.commit()
        completion.join(timeout=30)
    assert completed == [True]
    assert stored_answers(app, link.assessment_id) == {1: 2, 2: 3}
    with app.app_context():
        physical = db.session.execute(
            select(Score.items_answered).where(
                Score.assessment_id == link.assessment_id, Score.scale == "PF2"
            )
        ).scalar_one()
    assert physical == 2  # items 1 and 2, the second saved while the completion waited


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # row locks
def test_two_tabs_sending_the_first_answers_at_once_are_both_stored(app, link):
    """Two tabs of an open assessment save their first answers at the same moment: the second
    finds the assessment marked started by the first, which is no reason to refuse them."""
    engine = app.extensions["pro_db"]["engine"]
    with app.app_context():
        seen = _open_link(link.token)
    assert seen.status == AssessmentStatus.OPEN.value
    outcome: list[object] = []

    with app.app_context(), engine.connect() as first_tab:
        _save(first_tab, seen, 1, {1: 2})  # marks it started, holding the row
        tab = threading.Thread(target=_send, args=(app, seen, 2, {6: 1}, outcome))
        tab.start()
        _wait_until_blocked_on_a_lock(engine, "INSERT INTO responses")
        first_tab.commit()
        tab.join(timeout=30)
    assert outcome == ["stored"]
    assert stored_answers(app, link.assessment_id) == {1: 2, 6: 1}
    with app.app_context():
        assessment = db.session.get(Assessment, link.assessment_id)
        assert assessment.status == AssessmentStatus.IN_PROGRESS.value
        assert assessment.started_at is not None


def _wait_until_blocked_on_a_lock(engine, statement: str = "INSERT INTO responses") -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as watcher:
        for _ in range(300):
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE :statement"
                ),
                {"statement": f"%{statement}%"},
            ).scalar_one()
            if waiting:
                return
            watcher.rollback()
            time.sleep(0.05)
    raise AssertionError("the answers were not waiting for the completion's lock")
