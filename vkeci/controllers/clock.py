"""The controllers' clocks: the wall clock for the times they write, the monotonic one for intervals.

The pure core never reads a clock; the controllers read it here and pass the moment in.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

monotonic = time.monotonic


def utcnow() -> datetime:
    """Now, in UTC (what ``vkeci.core.times`` formats)."""
    return datetime.now(timezone.utc)
