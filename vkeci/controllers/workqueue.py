"""A per-key work queue in the style of client-go's workqueue.

* A key queued many times before a worker takes it is processed once (dedup).
* A key is never handed to two workers at once: if it is re-added while being processed it
  is queued again when the current worker calls ``done``.
* ``retry(key)`` requeues with capped exponential backoff per key; there is no retry limit,
  because a pod whose work is dropped would be stranded. ``forget(key)`` resets the backoff.
* ``add_after(key, delay)`` schedules a key for later (grace periods, polling).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable


class WorkQueue:
    """Thread-safe deduplicating queue with delayed adds and per-key backoff."""

    def __init__(
        self,
        *,
        base_delay: float = 0.2,
        max_delay: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._failures: dict[Hashable, int] = {}
        self._shutdown = False

    def add(self, key: Hashable) -> None:
        """Queue ``key`` now (no-op if it is already waiting)."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: Hashable) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (at once when delay <= 0)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            heapq.heappush(self._delayed, (self._clock() + delay, next(self._seq), key))
            self._cond.notify()

    def retry(self, key: Hashable, cap: float | None = None, floor: float = 0.0) -> float:
        """Requeue ``key`` after its next backoff delay (with jitter, at least ``floor``, at most ``cap`` or
        ``max_delay``); returns the delay."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = min(cap or self.max_delay, self.max_delay, self.base_delay * (2 ** min(failures, 30)))
        delay = max(delay * random.uniform(0.8, 1.0), min(floor, self.max_delay))
        self.add_after(key, delay)
        return delay

    def failures(self, key: Hashable) -> int:
        """How many retries ``key`` has had since it last succeeded."""
        with self._cond:
            return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        """Reset the backoff of ``key`` (call after it was processed successfully)."""
        with self._cond:
            self._failures.pop(key, None)

    def _promote_due_locked(self) -> float | None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self._add_locked(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float | None = None) -> Hashable | None:
        """The next key to process, or None on timeout or shutdown. Call ``done(key)`` after."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                next_due = self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                wait = next_due
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: Hashable) -> None:
        """Mark ``key`` finished; if it was re-added meanwhile it is queued again now."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        """Wake all waiting workers; ``get`` returns None from now on."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._delayed)
