from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pro_service import migrate
from pro_service.db import Base, make_engine
from pro_service.models import AuditEvent, AuditLogIsAppendOnly


def test_migrations_reach_head_on_an_empty_database(database_url):
    engine = make_engine(database_url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_models_and_migrations_agree(database_url):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_from_nothing_and_downgrade_to_nothing_on_a_fresh_sqlite_file(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    engine.dispose()


def _audit_row(session):
    event = AuditEvent(
        at=datetime(2026, 1, 1, tzinfo=UTC), actor_type="system", action="test.event"
    )
    session.add(event)
    session.commit()
    return event


def test_the_orm_refuses_to_change_an_audit_event(session):
    event = _audit_row(session)
    event.action = "changed"
    with pytest.raises(AuditLogIsAppendOnly):
        session.flush()


def test_the_database_refuses_to_change_or_delete_an_audit_event(session):
    _audit_row(session)
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("UPDATE audit_events SET action = 'changed'"))
    session.rollback()
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("DELETE FROM audit_events"))
    session.rollback()
    assert session.scalar(text("SELECT count(*) FROM audit_events")) == 1


def test_a_partial_time_point_is_stored_and_becomes_missed_on_downgrade(
    app, session, now, make_site, make_patient, database_url
):
    patient = make_patient(make_site())
    first = patient.assessments[0]
    first.status = "partial"
    session.commit()
    ident = first.id
    session.close()

    engine = make_engine(database_url)
    migrate.downgrade(engine, "score_language")
    with engine.connect() as conn:
        status = conn.scalar(text("SELECT status FROM assessments WHERE id = :i"), {"i": ident})
        assert status == "expired"
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("UPDATE assessments SET status = 'partial'"))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE assessments SET status = 'partial', anchor = 'chemotherapy'"))
    engine.dispose()
