"""Round trips to the database per questionnaire request: few, and fixed whatever the screen.

Under load every statement is a round trip that a patient waits for and that costs the web
worker CPU (seen in ``make bench-patient``: one statement less per request was worth more than
a fifth of the throughput). These tests count the statements sent to the database, the
rate-limit counter's included, so that a per-item loop or an extra query cannot come back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.pool import NullPool

from pro_service.extensions import db
from pro_service.models import Assessment, Response

from .helpers import stored_answers
from pages import csrf_of

#: Statements of a GET of a screen: finding the link, the stored answers (a valid link is never
#: counted against the rate limit: only failed look-ups are).
GET_STATEMENTS = {"postgresql": 2, "sqlite": 2}
#: Statements of a POST of a screen. PostgreSQL: the lookup, then the answers and the
#: assessment's status in one statement. Elsewhere: lookup, upsert, status.
POST_STATEMENTS = {"postgresql": 2, "sqlite": 3}
#: Reads of a submit: the link and the answers with their languages.
SUBMIT_READS = 2
#: When a client address starts a new rate-limit window, old windows' rows are deleted.
WINDOW_CLEAN_UP = "DELETE FROM rate_limit_counters"

# Screens of QLQ-C30 3.0 with 5, 2 and 1 items.
SCREENS = {1: [1, 2, 3, 4, 5], 2: [6, 7], 7: [28]}


@contextmanager
def counting(app) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    engine = app.extensions["pro_db"]["engine"]
    statements: list[str] = []

    def before(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:  # type: ignore[no-untyped-def]
        if not statement.startswith(WINDOW_CLEAN_UP):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _get_and_post(app, client, link, number: int, code: int) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    with counting(app) as on_get:
        response = client.get(link.screen(number))
    assert response.status_code == 200
    data = {"csrf_token": csrf_of(response.get_data(as_text=True)), "screen": str(number)}
    data.update({f"q{item}": str(code) for item in SCREENS[number]})
    with counting(app) as on_post:
        response = client.post(link.screen(number), data=data)
    assert response.status_code == 303
    return list(on_get), list(on_post)


def _dialect(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.extensions["pro_db"]["engine"].dialect.name)


def test_a_screen_costs_the_same_statements_whatever_its_number_of_items(app, client, link):
    dialect = _dialect(app)
    for number in SCREENS:
        # First visit: every answer is new (inserted); second visit: every answer changes.
        for code in (1, 2):
            on_get, on_post = _get_and_post(app, client, link, number, code)
            assert len(on_get) == GET_STATEMENTS[dialect], on_get
            assert len(on_post) == POST_STATEMENTS[dialect], on_post
    expected = {item: 2 for items in SCREENS.values() for item in items}
    assert stored_answers(app, link.assessment_id) == expected


def _answer_times(app, assessment_id: int) -> tuple[dict[int, datetime], datetime]:  # type: ignore[no-untyped-def]
    with app.app_context():
        answered = dict(
            db.session.execute(
                select(Response.item_number, Response.answered_at).where(
                    Response.assessment_id == assessment_id
                )
            ).all()
        )
        updated = db.session.get_one(Assessment, assessment_id).updated_at
        return answered, updated


def test_resending_the_same_answers_writes_nothing(app, client, link):
    _get_and_post(app, client, link, 1, 3)
    before = _answer_times(app, link.assessment_id)
    _get, again = _get_and_post(app, client, link, 1, 3)
    # The answers keep the time they were first given, the assessment its last change.
    assert _answer_times(app, link.assessment_id) == before
    if _dialect(app) == "sqlite":  # the status UPDATE is not even sent
        assert not [s for s in again if s.lstrip().upper().startswith(("UPDATE", "DELETE"))]
    assert stored_answers(app, link.assessment_id) == {item: 3 for item in SCREENS[1]}


def test_changing_one_answer_rewrites_only_that_answer(app, client, link):
    _get_and_post(app, client, link, 2, 1)
    answered, _updated = _answer_times(app, link.assessment_id)
    response = client.get(link.screen(2))
    data = {"csrf_token": csrf_of(response.get_data(as_text=True)), "screen": "2"}
    data.update({"q6": "1", "q7": "4"})
    assert client.post(link.screen(2), data=data).status_code == 303
    answered_after, _updated = _answer_times(app, link.assessment_id)
    assert answered_after[6] == answered[6]
    assert answered_after[7] > answered[7]
    assert stored_answers(app, link.assessment_id) == {6: 1, 7: 4}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server to lose
def test_a_connection_lost_while_resting_in_the_pool_is_replaced(app, client, link, monkeypatch):
    """Without ``pool_pre_ping``, a rested connection is still pinged (and replaced if dead)."""
    import pro_service.db

    engine = app.extensions["pro_db"]["engine"]
    assert client.get(link.screen(1)).status_code == 200
    # The server ends every pooled connection (as a restart would) while they rest.
    admin = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    assert ended >= 1
    monkeypatch.setattr(pro_service.db, "PING_AFTER_IDLE_SECONDS", 0.0)
    for _ in range(3):
        assert client.get(link.screen(1)).status_code == 200


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_patient_pages_statements_are_prepared_on_the_server_and_stay_prepared(
    app, client, link
):
    """The link look-up joins three tables, and planning it cost more than running it: after
    two uses on a connection it is prepared (parsed and planned once), and the screens, which
    read in autocommit and write with a commit, never roll back and so never drop it."""
    engine = app.extensions["pro_db"]["engine"]
    for code in (1, 2, 3, 4):
        _get_and_post(app, client, link, 1, code)
    pooled = engine.pool.checkedin()
    connections = [engine.connect() for _ in range(pooled)]
    try:
        prepared = [
            statement
            for connection in connections
            for statement in connection.execute(
                text("SELECT statement FROM pg_prepared_statements")
            ).scalars()
        ]
    finally:
        for connection in connections:
            connection.close()
    assert any("token_hash" in s and "JOIN sites" in s for s in prepared), prepared
    assert any(s.lstrip().startswith("SELECT responses.item_number") for s in prepared), prepared
    assert any("INSERT INTO responses" in s for s in prepared), prepared


@contextmanager
def checkouts(app) -> Iterator[list[int]]:  # type: ignore[no-untyped-def]
    """The ids of the pooled connections taken out of the pool while the block runs."""
    engine = app.extensions["pro_db"]["engine"]
    taken: list[int] = []

    def checkout(dbapi_connection, _record, _proxy) -> None:  # type: ignore[no-untyped-def]
        taken.append(id(dbapi_connection))

    event.listen(engine, "checkout", checkout)
    try:
        yield taken
    finally:
        event.remove(engine, "checkout", checkout)


def test_every_patient_request_holds_one_connection_the_submit_included(app, client, link):
    """A pooled connection per request, not one for the link and one for the page: the screens
    work on the request's connection, and the submit's session (scoring, audit) on the same
    connection and transaction as the link look-up."""
    with checkouts(app) as on_get:
        response = client.get(link.screen(7))
    assert response.status_code == 200
    data = {"csrf_token": csrf_of(response.get_data(as_text=True)), "screen": "7", "q28": "2"}
    with checkouts(app) as on_post:
        assert client.post(link.screen(7), data=data).status_code == 303
    with checkouts(app) as on_review:
        review = client.get(f"{link.url}/review")
    assert review.status_code == 200
    with checkouts(app) as on_submit, counting(app) as statements:
        submitted = client.post(
            f"{link.url}/submit", data={"csrf_token": csrf_of(review.get_data(as_text=True))}
        )
    assert submitted.status_code == 303
    # The submit reads the link (with the patient's site) and the answers with their
    # languages, and nothing else: the assessment and its patient are not loaded, and the
    # completion's UPDATE is not read back (it returns the time point, for the audit record).
    selects = [s for s in statements if s.startswith("SELECT")]
    assert len(selects) == SUBMIT_READS, selects
    assert re.search(r"\bJOIN patients\b", selects[0]), selects[0]
    assert re.search(r"\bFROM responses\b", selects[1]), selects[1]
    completion = [s for s in statements if s.startswith("UPDATE assessments")]
    assert len(completion) == 1
    assert re.search(r"RETURNING (assessments\.)?timepoint$", completion[0]), completion[0]
    assert submitted.headers["Location"].endswith(f"/q/{link.token}/thanks")
    with checkouts(app) as on_thanks:
        assert client.get(f"{link.url}/thanks").status_code == 200
    assert [len(on_get), len(on_post), len(on_review), len(on_submit), len(on_thanks)] == [1] * 5

    with app.app_context():
        assessment = db.session.get_one(Assessment, link.assessment_id)
        assert assessment.status == "completed"
        scores = {score.scale: score for score in assessment.scores}
    assert scores["QL2"].value is None  # nothing of global health answered
    assert scores["FI"].value == pytest.approx(100 / 3)  # q28 = 2: (2 - 1) / 3 * 100
    assert scores["FI"].items_answered == 1


def test_the_welcome_and_thank_you_pages_read_what_they_show_once(app, client, link):
    """The link from the SMS shows the welcome page after one look-up of the link and one read
    of the answers (none yet), and the thank-you page after the link and one look for another
    questionnaire open today: nothing is read twice."""
    with counting(app) as on_welcome:
        welcome = client.get(link.url)
    assert welcome.status_code == 200
    answer_reads = [s for s in on_welcome if "FROM responses" in s]
    assert len(on_welcome) == 2 and len(answer_reads) == 1, on_welcome

    screen = client.get(link.screen(7))
    data = {"csrf_token": csrf_of(screen.get_data(as_text=True)), "screen": "7", "q28": "2"}
    assert client.post(link.screen(7), data=data).status_code == 303
    review = client.get(f"{link.url}/review")
    submitted = client.post(
        f"{link.url}/submit", data={"csrf_token": csrf_of(review.get_data(as_text=True))}
    )
    assert submitted.status_code == 303
    with counting(app) as on_thanks:
        thanks = client.get(f"{link.url}/thanks")
    assert thanks.status_code == 200
    assert len(on_thanks) == 2, on_thanks
    assert "FROM assessments" in on_thanks[1] and "LIMIT" in on_thanks[1], on_thanks
