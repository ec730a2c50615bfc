"""Messages go out only inside the site's sending hours, in the site's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pro_service.messaging.outbox import in_sending_hours, next_sending_time
from pro_service.models import Site

STOCKHOLM = ZoneInfo("Europe/Stockholm")
HELSINKI = ZoneInfo("Europe/Helsinki")


def site(zone: str, start: str = "09:00", end: str = "20:00") -> Site:
    return Site(time_zone=zone, sending_start=start, sending_end=end)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "at", "expected"),
    [
        # Stockholm, the evening before summer time starts (29 March 2026): 09:00 CEST = 07:00 UTC
        ("Europe/Stockholm", utc(2026, 3, 28, 19, 30), utc(2026, 3, 29, 7, 0)),
        # ... and in the small hours of the change itself
        ("Europe/Stockholm", utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 7, 0)),
        # Stockholm, the evening before winter time (25 October 2026): 09:00 CET = 08:00 UTC
        ("Europe/Stockholm", utc(2026, 10, 24, 18, 30), utc(2026, 10, 25, 8, 0)),
        # Helsinki, before summer time: 09:00 EEST = 06:00 UTC
        ("Europe/Helsinki", utc(2026, 3, 28, 20, 0), utc(2026, 3, 29, 6, 0)),
        # Helsinki, before winter time: 09:00 EET = 07:00 UTC
        ("Europe/Helsinki", utc(2026, 10, 24, 18, 0), utc(2026, 10, 25, 7, 0)),
        # Early morning on an ordinary winter day waits for 09:00 the same day
        ("Europe/Stockholm", utc(2026, 1, 15, 5, 0), utc(2026, 1, 15, 8, 0)),
        ("Europe/Helsinki", utc(2026, 1, 15, 5, 0), utc(2026, 1, 15, 7, 0)),
    ],
)
def test_a_message_due_outside_sending_hours_waits_for_the_next_local_nine_oclock(
    zone, at, expected
):
    assert next_sending_time(site(zone), at) == expected
    local = expected.astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute) == (9, 0)


def test_3_am_is_never_a_sending_time_in_either_country():
    for zone in ("Europe/Stockholm", "Europe/Helsinki"):
        for day in (1, 28, 29, 30):
            for month in (3, 10):
                at = datetime(2026, month, day, 3, 0, tzinfo=ZoneInfo(zone))
                assert not in_sending_hours(site(zone), at)


def test_the_same_utc_instant_is_inside_hours_in_summer_but_not_in_winter():
    # 07:30 UTC is 08:30 in Stockholm in winter (closed) and 09:30 in summer (open).
    assert not in_sending_hours(site("Europe/Stockholm"), utc(2026, 3, 28, 7, 30))
    assert in_sending_hours(site("Europe/Stockholm"), utc(2026, 3, 30, 7, 30))
    # 18:30 UTC is 19:30 in Stockholm in winter (open) and 20:30 in summer (closed).
    assert in_sending_hours(site("Europe/Stockholm"), utc(2026, 10, 26, 18, 30))
    assert not in_sending_hours(site("Europe/Stockholm"), utc(2026, 10, 24, 18, 30))


def test_the_hours_are_start_inclusive_and_end_exclusive():
    s = site("Europe/Helsinki")
    assert in_sending_hours(s, datetime(2026, 6, 1, 9, 0, tzinfo=HELSINKI))
    assert in_sending_hours(s, datetime(2026, 6, 1, 19, 59, tzinfo=HELSINKI))
    assert not in_sending_hours(s, datetime(2026, 6, 1, 20, 0, tzinfo=HELSINKI))
    assert not in_sending_hours(s, datetime(2026, 6, 1, 8, 59, tzinfo=HELSINKI))


def test_a_site_can_have_its_own_sending_hours():
    s = site("Europe/Stockholm", "10:30", "18:00")
    at = datetime(2026, 6, 1, 18, 0, tzinfo=STOCKHOLM)
    assert next_sending_time(s, at) == datetime(2026, 6, 2, 10, 30, tzinfo=STOCKHOLM)


@given(
    at=st.datetimes(
        min_value=datetime(2025, 1, 1),
        max_value=datetime(2028, 12, 31),
        timezones=st.just(UTC),
    ),
    zone=st.sampled_from(["Europe/Stockholm", "Europe/Helsinki"]),
)
def test_the_next_sending_time_is_the_earliest_allowed_instant(at, zone):
    s = site(zone)
    chosen = next_sending_time(s, at)
    assert chosen >= at
    assert in_sending_hours(s, chosen)
    if chosen > at:
        # Nothing allowed in between: one minute before the chosen time is still closed.
        assert not in_sending_hours(s, chosen - timedelta(minutes=1))
        assert chosen - at <= timedelta(hours=14)  # 20:00 to 09:00 across winter time
