"""Client-side rate limits: token buckets for ECI actions and for the Kubernetes API.

ECI enforces per-account, per-action limits per minute; staying under them client-side turns
a burst (100 pods at once) into a short queue instead of a storm of `Throttling` errors.
The Kubernetes side has one QPS/burst budget in which high-priority callers (lease renewal,
node status) may use a reserve that ordinary pod traffic must leave alone, so heartbeats
never starve behind status patches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

# Calls per 60 s per account, from the ECI "Flow control information" doc; where the two
# public pages disagree the lower value is used (eci-openapi.md §5.4).
ECI_LIMITS_PER_MINUTE: dict[str, int] = {
    "CreateContainerGroup": 1000,
    "DeleteContainerGroup": 1000,
    "DescribeContainerGroups": 2000,
    "DescribeContainerGroupStatus": 10000,
    "DescribeContainerGroupEvents": 10000,
    "DescribeContainerGroupMetric": 2000,
    "DescribeMultiContainerGroupMetric": 500,
    "UpdateContainerGroup": 500,
    "RestartContainerGroup": 500,
    "ExecContainerCommand": 500,
    "DescribeContainerLog": 500,
    "CreateImageCache": 200,
    "DescribeRegions": 600,
}
# An action missing from the table gets this budget.
DEFAULT_PER_MINUTE = 500


class RateLimitTimeout(TimeoutError):
    """No token became available within the caller's deadline."""


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    ``reserve`` tokens are kept for high-priority callers: a normal ``acquire`` waits while
    fewer than ``1 + reserve`` tokens are left; ``acquire(priority=True)`` needs only one.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        reserve: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self.reserve = max(0, min(reserve, self.burst - 1))
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()
        self._sleep = sleep

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self, *, priority: bool = False) -> float:
        """Take a token if one is available now; return 0.0, or the seconds to wait before retrying."""
        need = 1.0 if priority else 1.0 + self.reserve
        with self._lock:
            self._refill()
            if self._tokens >= need:
                self._tokens -= 1.0
                return 0.0
            return (need - self._tokens) / self.rate

    def acquire(self, *, priority: bool = False, timeout: float | None = None) -> None:
        """Block until a token is taken; raise RateLimitTimeout after ``timeout`` seconds."""
        deadline = None if timeout is None else self._clock() + timeout
        while True:
            wait = self.try_acquire(priority=priority)
            if wait <= 0:
                return
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    raise RateLimitTimeout(f"rate limit: no token within {timeout:.1f}s")
                wait = min(wait, left)
            (self._sleep or time.sleep)(min(wait, 1.0))

    @property
    def tokens(self) -> float:
        """Tokens available now (for metrics and tests)."""
        with self._lock:
            self._refill()
            return self._tokens


class EciLimiter:
    """One bucket per ECI action, sized to its per-minute limit: burst a tenth of it, refilled at the rest.

    A bucket refilled at the full limit would let ``burst + limit`` calls through in the first minute of a
    burst and be throttled by ECI at the end of it (seen with the fake's fixed windows at 1,500 pods). With
    ``rate = (limit - burst) / 60`` no 60 s window ever holds more than the limit, and a long burst runs
    at 90% of it.
    """

    def __init__(
        self, per_minute: Mapping[str, int] | None = None, *, enabled: bool = True, share: float = 1.0
    ) -> None:
        self.enabled = enabled
        # Several daemons on one account (one per node) each take ``share`` of the documented limits, so
        # that together they stay under them; limits given explicitly (``per_minute``) are this daemon's own.
        self.share = share
        self._limits = {action: max(1, int(limit * share)) for action, limit in ECI_LIMITS_PER_MINUTE.items()}
        self._limits.update(per_minute or {})
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, action: str) -> TokenBucket:
        """The bucket for ``action`` (created on first use)."""
        with self._lock:
            if action not in self._buckets:
                per_minute = self._limits.get(action, max(1, int(DEFAULT_PER_MINUTE * self.share)))
                burst = max(1, per_minute // 10)
                self._buckets[action] = TokenBucket(max(per_minute - burst, 1) / 60.0, burst)
            return self._buckets[action]

    def acquire(self, action: str, timeout: float | None = 60.0) -> None:
        """Wait for a token for ``action`` (no-op when limits are disabled)."""
        if self.enabled:
            self.bucket(action).acquire(timeout=timeout)


def kube_bucket(qps: float, burst: int) -> TokenBucket:
    """The Kubernetes API budget; a tenth of the burst (at least 2) is reserved for lease/node writes."""
    return TokenBucket(qps, burst, reserve=max(2, burst // 10))
