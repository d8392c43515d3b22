"""How the daemon's threads loop: one vocabulary for backing off, repeating and retrying.

* :class:`Backoff`: exponential delays with a cap (and optional jitter), reset on success.
* :func:`guarded`: one pass of a loop that must survive any error (logged, never raised); with a
  :class:`Streak`, a run of failures is two lines (the first, and the recovery), not one per pass.
* :func:`run_periodic`: a guarded pass every ``every`` seconds until ``stop``.
* :func:`retry_until`: call until it succeeds or ``stop``, backing off between attempts.

Reading a loop written with these, one knows at once that it survives errors, how it backs off
and how it stops. ``WorkQueue.retry`` is the per-key variant of the same backoff.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TypeVar

from vkeci.log import fields

T = TypeVar("T")
Errors = tuple[type[BaseException], ...]


class Backoff:
    """Delays of ``base``, ``base·factor``, ... up to ``cap`` seconds; ``jitter`` adds up to that
    fraction at random (so many clients do not retry in step)."""

    def __init__(self, base: float, cap: float, *, factor: float = 2.0, jitter: float = 0.0) -> None:
        self.base, self.cap, self.factor, self.jitter = base, cap, factor, jitter
        self.attempt = 0

    def next(self) -> float:
        """The delay before the next attempt (and count this one)."""
        delay = min(self.cap, self.base * self.factor**self.attempt)
        self.attempt += 1
        return delay * (1.0 + random.uniform(0.0, self.jitter)) if self.jitter else delay

    def reset(self) -> None:
        """A success: the next failure waits ``base`` again."""
        self.attempt = 0


class Streak:
    """The consecutive failures of one loop's passes. During an ECI outage the status loop fails every
    2 s: without this, a 10-minute outage wrote 300 identical warnings; with it, one warning when the
    failures start (repeats are debug lines) and one info line, with the count, when a pass works again."""

    def __init__(self) -> None:
        self.failures = 0


def guarded(
    log: logging.Logger, what: str, fn: Callable[[], object], expected: Errors = (), streak: Streak | None = None
) -> bool:
    """Run one pass of a loop; an ``expected`` error is logged as a warning (with ``streak``: only the
    first of a run of failures), any other with its traceback. Never raises (but
    ``KeyboardInterrupt``/``SystemExit`` still end the thread). True if it worked."""
    try:
        fn()
    except expected as err:
        repeat = streak is not None and streak.failures > 0
        level = logging.DEBUG if repeat else logging.WARNING
        log.log(level, f"{what} failed, will retry", extra=fields(error=str(err)))
    except Exception:
        log.exception(f"{what} crashed, will retry")
    else:
        if streak is not None and streak.failures:
            log.info(f"{what} works again", extra=fields(failed_passes=streak.failures))
            streak.failures = 0
        return True
    if streak is not None:
        streak.failures += 1
    return False


def run_periodic(
    stop: threading.Event,
    every: float | Callable[[], float],
    fn: Callable[[], object],
    what: str,
    log: logging.Logger,
    expected: Errors = (),
) -> None:
    """Wait ``every`` seconds (a callable: asked before each wait), run a guarded pass of ``fn``, repeat
    until ``stop``. A run of failures logs its first and its end (:class:`Streak`)."""
    streak = Streak()
    while not stop.wait(every() if callable(every) else every):
        guarded(log, what, fn, expected, streak)


def retry_until(
    stop: threading.Event,
    fn: Callable[[], T],
    what: str,
    log: logging.Logger,
    backoff: Backoff,
    expected: Errors,
) -> tuple[bool, T | None]:
    """Call ``fn`` until it returns without raising one of ``expected`` (other errors propagate),
    waiting ``backoff`` between attempts. (True, its value) on success, (False, None) once ``stop`` is set."""
    while not stop.is_set():
        try:
            return True, fn()
        except expected as err:
            delay = backoff.next()
            log.warning(
                f"{what} failed, retrying",
                extra=fields(error=str(err), attempt=backoff.attempt - 1, retry_in=round(delay, 1)),
            )
            if stop.wait(delay):
                break
    return False, None
