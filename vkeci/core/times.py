"""Time as Kubernetes and ECI write it: the only place a time is formatted or parsed.

Pure: the caller passes the moment (``controllers.clock.utcnow()`` in the daemon), so translation
and status mapping stay functions of their arguments.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

Now = datetime | str


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def rfc3339(moment: datetime) -> str:
    """metav1.Time: RFC 3339 in UTC with a ``Z`` and second precision (also ECI's StartTime format)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime) -> str:
    """metav1.MicroTime: RFC 3339 in UTC with microseconds (a Lease's renewTime)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(value: Any) -> datetime | None:
    """An RFC 3339 / ISO 8601 time (ECI's or Kubernetes'), or None when absent or unparsable."""
    if not value or not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def parse_time(value: Any) -> str | None:
    """An ECI time string normalised to RFC 3339 UTC, or None when absent or unparsable."""
    moment = parse(value)
    return rfc3339(moment) if moment is not None else None


def timestamp(now: Now) -> str:
    """``now`` (a datetime, naive meaning UTC, or an RFC 3339 string) as metav1.Time.

    Raises ValueError for a string that is not a time: the caller's clock is broken, and
    writing the current time instead would hide it (and make this module read the clock)."""
    if isinstance(now, str):
        parsed = parse_time(now)
        if parsed is None:
            raise ValueError(f"not an RFC 3339 time: {now!r}")
        return parsed
    return rfc3339(now)
