"""The virtual clock: wall time plus an offset that the admin API can advance (never moves backwards)."""

from __future__ import annotations

import threading
import time


class Clock:
    """`now()` is epoch seconds on the fake's virtual timeline."""

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current virtual time."""
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        """Seconds the virtual clock is ahead of wall time."""
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new virtual time."""
        if seconds < 0:
            raise ValueError("the virtual clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()
