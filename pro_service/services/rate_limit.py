"""Fixed-window rate limiting kept in the database, so the limit holds across web workers.

Each request adds one to the counter of its (bucket, window) row with one atomic upsert
(``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, on SQLite and PostgreSQL alike), so two
workers counting at the same moment can never both read the same old value. Buckets are keyed
hashes: the table never holds a client address.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..models import RateLimitCounter

#: Counter rows older than this are deleted whenever a bucket starts a new window.
KEEP_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class Limit:
    """At most ``requests`` per ``window_seconds`` for one bucket."""

    requests: int
    window_seconds: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    count: int
    retry_after_seconds: int


def bucket_for(scope: str, identity: str, secret: str) -> str:
    """A keyed hash naming the bucket of ``identity`` (e.g. a client address) within ``scope``."""
    return hmac.new(secret.encode(), f"{scope}\x00{identity}".encode(), hashlib.sha256).hexdigest()


def window_start(now: datetime, window_seconds: int) -> datetime:
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % window_seconds, tz=UTC)


def hit(session: Session, *, now: datetime, bucket: str, limit: Limit) -> Decision:
    """Count one request in ``bucket`` and say whether it is within ``limit``.

    Only flushes; the caller commits at once, before any other work in this transaction (so
    the count survives a failed request, and the row lock is not held while the page is built).
    """
    start = window_start(now, limit.window_seconds)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # A counter lost in a crash is harmless: do not wait for the disk on this transaction.
        session.execute(text("SET LOCAL synchronous_commit = off"))
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(RateLimitCounter)
        .values(bucket=bucket, window_start=start, count=1)
        .on_conflict_do_update(
            index_elements=["bucket", "window_start"],
            set_={"count": RateLimitCounter.count + 1},
        )
        .returning(RateLimitCounter.count)
    )
    count = int(session.execute(statement).scalar_one())
    if count == 1:
        session.execute(
            delete(RateLimitCounter).where(RateLimitCounter.window_start < now - KEEP_FOR)
        )
    retry_after = max(
        1, int((start + timedelta(seconds=limit.window_seconds) - now).total_seconds())
    )
    return Decision(allowed=count <= limit.requests, count=count, retry_after_seconds=retry_after)
