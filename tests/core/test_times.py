"""The one time formatter: metav1.Time, MicroTime, ECI's times."""

from datetime import datetime, timedelta, timezone

import pytest

from vkeci.core import times

MOMENT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def test_formats():
    assert times.rfc3339(MOMENT) == "2026-01-02T03:04:05Z"
    assert times.micro_time(MOMENT) == "2026-01-02T03:04:05.678901Z"
    assert times.rfc3339(MOMENT.replace(tzinfo=None)) == "2026-01-02T03:04:05Z"  # naive means UTC
    assert times.rfc3339(MOMENT.astimezone(timezone(timedelta(hours=8)))) == "2026-01-02T03:04:05Z"


def test_parsing_ecis_times():
    assert times.parse_time("2026-01-02T11:04:05+08:00") == "2026-01-02T03:04:05Z"
    assert times.parse_time("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"
    assert times.parse_time("yesterday") is None and times.parse_time(None) is None


def test_a_broken_now_is_an_error_not_the_current_time():
    assert times.timestamp("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        times.timestamp("garbage")
