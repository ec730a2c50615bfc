"""The two ways of writing an event: through the session, and at once on a connection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from pro_service.audit import Actor, record, record_now
from pro_service.extensions import db
from pro_service.models import AuditEvent

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def _fields(event: AuditEvent) -> tuple[object, ...]:
    return (
        event.at,
        event.actor_type,
        event.actor_id,
        event.object_type,
        event.object_id,
        event.site_id,
        event.before,
        event.after,
        event.reason,
    )


def test_an_event_written_at_once_reads_back_as_one_added_to_the_session(app):
    """The patient's submit writes its event with ``record_now``, everything else through the
    session: the audit trail cannot tell them apart."""
    written: dict[str, Any] = {
        "now": NOW,
        "actor": Actor("patient", "17"),
        "object_type": "assessment",
        "object_id": 42,
        "site_id": 3,
        "before": {"status": "open", "due": datetime(2026, 3, 1, tzinfo=UTC)},
        "after": {"timepoint": "baseline", "language": "fi"},
        "reason": "för test",
    }
    with app.app_context():
        record(db.session, action="test.session", **written)
        db.session.flush()
        record_now(db.session.connection(), action="test.at_once", **written)
        db.session.commit()
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [e.action for e in events] == ["test.session", "test.at_once"]
        assert _fields(events[0]) == _fields(events[1])
        assert events[1].before == {"status": "open", "due": "2026-03-01T00:00:00+00:00"}
        assert events[1].at == NOW


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_event_written_at_once_refuses_tokens_and_answers_and_writes_nothing(app):
    with app.app_context():
        for key in ("token", "answers", "phone"):
            with pytest.raises(ValueError, match=key):
                record_now(
                    db.session.connection(),
                    now=NOW,
                    actor=Actor.system(),
                    action="test.refused",
                    after={key: "x"},
                )
        db.session.commit()
        assert db.session.scalars(select(AuditEvent)).all() == []
