"""Writing the append-only audit log. Services call :func:`record` (or, on a path without ORM
objects, :func:`record_now`); nothing else writes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.orm import Session

from ..models import AuditEvent

# Fields that must never reach the audit log, whatever a caller passes.
_FORBIDDEN_KEYS = frozenset(
    {
        "phone",
        "phone_number",
        "phone_encrypted",
        "token",
        "token_hash",
        "token_encrypted",
        "answer",
        "answers",
        "responses",
        "password",
        "password_hash",
        "totp_secret",
    }
)


@dataclass(frozen=True)
class Actor:
    type: str  # staff, patient, system, operator
    id: str | None = None

    @classmethod
    def staff(cls, user_id: int) -> Actor:
        return cls("staff", str(user_id))

    @classmethod
    def system(cls, name: str = "scheduler") -> Actor:
        return cls("system", name)

    @classmethod
    def operator(cls, name: str = "cli") -> Actor:
        return cls("operator", name)


def _clean(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    bad = _FORBIDDEN_KEYS.intersection(values)
    if bad:
        raise ValueError(f"refusing to write {', '.join(sorted(bad))} to the audit log")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, datetime | date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def record(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    action: str,
    object_type: str | None = None,
    object_id: object = None,
    site_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """Add an event to the session (written at its next flush) and return it."""
    event = AuditEvent(
        **_event(
            now=now,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            site_id=site_id,
            before=before,
            after=after,
            reason=reason,
        )
    )
    session.add(event)
    return event


_INSERT_EVENT = insert(cast(Table, AuditEvent.__table__))


def record_now(
    connection: Connection,
    *,
    now: datetime,
    actor: Actor,
    action: str,
    object_type: str | None = None,
    object_id: object = None,
    site_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """The same event as :func:`record`, written at once on ``connection`` with one INSERT
    past any ORM session: for a busy path that loads no ORM object (the patient's submit),
    where the session's unit of work for one event cost more than the INSERT itself. Flush the
    session first if events it holds must come before this one."""
    connection.execute(
        _INSERT_EVENT,
        _event(
            now=now,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            site_id=site_id,
            before=before,
            after=after,
            reason=reason,
        ),
    )


def _event(
    *,
    now: datetime,
    actor: Actor,
    action: str,
    object_type: str | None,
    object_id: object,
    site_id: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None,
) -> dict[str, Any]:
    """An event's columns; refuses what must never reach the log (see :func:`_clean`)."""
    return {
        "at": now,
        "actor_type": actor.type,
        "actor_id": actor.id,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "site_id": site_id,
        "before": _clean(before),
        "after": _clean(after),
        "reason": reason,
    }
