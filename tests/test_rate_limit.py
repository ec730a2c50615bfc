"""The database rate limiter: fixed windows, atomic counting, no addresses stored."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from pro_service import rate_limit
from pro_service.models import RateLimitCounter

LIMIT = rate_limit.Limit(requests=2, window_seconds=60)


def test_requests_over_the_limit_are_refused_until_the_next_window(session, now):
    bucket = rate_limit.bucket_for("patient-link", "198.51.100.7", "secret")
    decisions = [
        rate_limit.hit(session.connection(), now=now, bucket=bucket, limit=LIMIT) for _ in range(3)
    ]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert [d.count for d in decisions] == [1, 2, 3]
    assert decisions[-1].retry_after_seconds == 60  # ``now`` is on a minute boundary
    later = rate_limit.hit(
        session.connection(), now=now + timedelta(seconds=61), bucket=bucket, limit=LIMIT
    )
    assert (later.allowed, later.count) == (True, 1)


def test_each_address_has_its_own_bucket_and_the_address_is_not_stored(session, now):
    first = rate_limit.bucket_for("patient-link", "198.51.100.7", "secret")
    second = rate_limit.bucket_for("patient-link", "198.51.100.8", "secret")
    assert first != second
    for _ in range(3):
        rate_limit.hit(session.connection(), now=now, bucket=first, limit=LIMIT)
    assert rate_limit.hit(session.connection(), now=now, bucket=second, limit=LIMIT).allowed
    assert "198.51.100" not in first


def test_old_windows_are_cleared_when_a_new_one_starts(session, now):
    bucket = rate_limit.bucket_for("patient-link", "198.51.100.7", "secret")
    rate_limit.hit(session.connection(), now=now - timedelta(hours=3), bucket=bucket, limit=LIMIT)
    rate_limit.hit(session.connection(), now=now, bucket=bucket, limit=LIMIT)
    assert session.scalar(select(func.count()).select_from(RateLimitCounter)) == 1
