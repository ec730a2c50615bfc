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
from typing import Any

from sqlalchemy import Connection, String, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import RateLimitCounter, UTCDateTime

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


def hit(connection: Connection, *, now: datetime, bucket: str, limit: Limit) -> Decision:
    """Count one request in ``bucket`` and say whether it is within ``limit``.

    Give it a connection of its own in autocommit mode (``counting_connection``): each
    statement then commits by itself, so the count survives a failed request and the row lock
    is released at once instead of being held while the page is built.
    """
    start = window_start(now, limit.window_seconds)
    upsert = _COUNT[connection.dialect.name if connection.dialect.name in _COUNT else "sqlite"]
    count = int(connection.execute(upsert, {"bucket": bucket, "window_start": start}).scalar_one())
    return _decide(connection, now=now, start=start, count=count, limit=limit)


def _decide(
    connection: Connection, *, now: datetime, start: datetime, count: int, limit: Limit
) -> Decision:
    if count == 1:
        connection.execute(
            delete(RateLimitCounter).where(RateLimitCounter.window_start < now - KEEP_FOR)
        )
    retry_after = max(
        1, int((start + timedelta(seconds=limit.window_seconds) - now).total_seconds())
    )
    return Decision(allowed=count <= limit.requests, count=count, retry_after_seconds=retry_after)


def _count_statement(dialect: str) -> Any:
    """The counting upsert, built once (bound parameters ``bucket`` and ``window_start``)."""
    if dialect == "postgresql":
        # One statement, one round trip. A counter lost in a crash is harmless, so this commit
        # does not wait for the disk: set_config(..., true) applies to this statement's own
        # transaction only.
        no_wait = select(
            bindparam("bucket", type_=String()).label("bucket"),
            bindparam("window_start", type_=UTCDateTime()).label("window_start"),
            literal(1).label("count"),
        ).where(func.set_config("synchronous_commit", "off", True).is_not(None))
        return (
            postgresql.insert(RateLimitCounter)
            .from_select(["bucket", "window_start", "count"], no_wait)
            .on_conflict_do_update(
                index_elements=["bucket", "window_start"],
                set_={"count": RateLimitCounter.count + 1},
            )
            .returning(RateLimitCounter.count)
        )
    return (
        sqlite.insert(RateLimitCounter)
        .values(bucket=bindparam("bucket"), window_start=bindparam("window_start"), count=1)
        .on_conflict_do_update(
            index_elements=["bucket", "window_start"],
            set_={"count": RateLimitCounter.count + 1},
        )
        .returning(RateLimitCounter.count)
    )


_COUNT = {"postgresql": _count_statement("postgresql"), "sqlite": _count_statement("sqlite")}


def peek(connection: Connection, *, now: datetime, bucket: str, limit: Limit) -> Decision:
    """Whether one more request in ``bucket`` would be within ``limit``, counting nothing.

    For limits on failures (sign-in): look before the attempt, :func:`hit` only when it fails.
    ``count`` is the number already counted in the current window.
    """
    start = window_start(now, limit.window_seconds)
    counted = connection.execute(
        select(RateLimitCounter.count).where(
            RateLimitCounter.bucket == bucket, RateLimitCounter.window_start == start
        )
    ).scalar_one_or_none()
    count = int(counted or 0)
    retry_after = max(
        1, int((start + timedelta(seconds=limit.window_seconds) - now).total_seconds())
    )
    return Decision(allowed=count < limit.requests, count=count, retry_after_seconds=retry_after)


def release(connection: Connection, *, now: datetime, bucket: str, limit: Limit) -> None:
    """Give back one count of the current window (an attempt reserved with :func:`hit` that
    turned out not to be a failure)."""
    start = window_start(now, limit.window_seconds)
    connection.execute(
        update(RateLimitCounter)
        .where(
            RateLimitCounter.bucket == bucket,
            RateLimitCounter.window_start == start,
            RateLimitCounter.count > 0,
        )
        .values(count=RateLimitCounter.count - 1)
    )


def clear(connection: Connection, *, bucket: str) -> None:
    """Forget every count of ``bucket`` (e.g. an account's failures once it has signed in)."""
    connection.execute(delete(RateLimitCounter).where(RateLimitCounter.bucket == bucket))
