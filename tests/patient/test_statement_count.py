"""SQL statements per questionnaire request: a fixed number, whatever the size of the screen.

Saving a screen used to cost a SELECT and an INSERT or UPDATE per item; under load every
statement is a round trip that a patient waits for. These tests count the statements sent to
the database (the rate-limit counter's included) so that a per-item loop cannot come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from .helpers import csrf_of, stored_answers

#: Statements of a GET of a screen: the link lookup (with patient and site) and the stored
#: answers, besides the rate-limit counter.
GET_STATEMENTS = 2
#: Statements of a POST of a screen: the link lookup, the stored answers of the screen, one
#: upsert of its answers and the assessment's status, besides the rate-limit counter.
POST_STATEMENTS = 4
#: The rate-limit counter: one upsert, and when a new window starts the deletion of old rows.
RATE_LIMIT_STATEMENTS = 2

# Screens of QLQ-C30 3.0 with 5, 2 and 1 items.
SCREENS = {1: [1, 2, 3, 4, 5], 2: [6, 7], 7: [28]}


@contextmanager
def counting(app) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    engine = app.extensions["pro_db"]["engine"]
    statements: list[str] = []

    def before(_conn, _cursor, statement, _parameters, _context, _executemany) -> None:  # type: ignore[no-untyped-def]
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


def _own(statements: list[str]) -> list[str]:
    return [s for s in statements if "rate_limit_counters" not in s]


def test_a_screen_costs_the_same_statements_whatever_its_number_of_items(app, client, link):
    for number in SCREENS:
        # First visit: every answer is new (inserted); second visit: every answer changes.
        for code in (1, 2):
            on_get, on_post = _get_and_post(app, client, link, number, code)
            assert len(_own(on_get)) == GET_STATEMENTS, on_get
            assert len(_own(on_post)) == POST_STATEMENTS, on_post
            assert len(on_get) - GET_STATEMENTS <= RATE_LIMIT_STATEMENTS, on_get
            assert len(on_post) - POST_STATEMENTS <= RATE_LIMIT_STATEMENTS, on_post
    expected = {item: 2 for items in SCREENS.values() for item in items}
    assert stored_answers(app, link.assessment_id) == expected


def test_resending_the_same_answers_writes_nothing(app, client, link):
    _get_and_post(app, client, link, 1, 3)
    _get, again = _get_and_post(app, client, link, 1, 3)
    writes = [s for s in again if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    # Only the rate-limit counter is written.
    assert len(writes) == 1, writes
    assert "rate_limit" in writes[0]
    assert stored_answers(app, link.assessment_id) == {item: 3 for item in SCREENS[1]}


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
