"""Fault injection and call accounting, configurable at start-up and through `PUT /_fake/faults`.

Faults (all optional; see fakes/README.md for the JSON):
* `latency`: {action or "*": seconds} added before the action runs.
* `errors`: [{action, code, status, message, rate, times, retry_after_ms}] - answer an error instead of
  running the action; `rate` is a probability, `times` caps how many replies are affected.
* `rate_limits`: {enabled, per_minute: {action: n}} - fixed 60 s windows per action; over the limit the
  reply is 400 `Throttling.User` with `x-acs-retry-after` (ms to the next window).
* `stock`: {zone: n or null} - how many more groups a zone can take (0 = no stock); `stock_mode`
  async (ScheduleFailed + NoStock Warning event, the documented path) or sync (403 OperationDenied.NoStock).
* `drop_response`: {action or "*": rate} - run the action, then close the connection without replying.
* `image_pull_errors`: [regex] - containers whose image matches never pull: Waiting/ImagePullBackOff, the
  group stays Pending, Warning events `Failed` and `BackOff`.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from typing import Any

from fakes.eci.errors import ApiError, throttled
from fakes.eci.settings import DEFAULT_RATE_LIMITS

JOURNAL_SIZE = 200_000  # about 20 MB at most; a 5,000-pod burst makes about 20,000 calls

_DEFAULT_MESSAGES = {
    "ServiceUnavailable": "The request has failed due to a temporary failure of the server.",
    "InternalError": "The request processing has failed due to some unknown error.",
    "Throttling.User": "Request was denied due to user flow control.",
    "Throttling": "Request was denied due to flow control.",
}


class FaultError(ValueError):
    """An invalid fault specification (message names the key)."""


def _rate(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise FaultError(f"faults: {where} must be a probability between 0 and 1, got {value!r}")
    return float(value)


class Faults:
    """The current fault set plus per-action call counters. Thread-safe."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.latency: dict[str, float] = {}
        self.errors: list[dict[str, Any]] = []
        self.rate_limits_enabled = False
        self.per_minute: dict[str, int] = dict(DEFAULT_RATE_LIMITS)
        self.drop_response: dict[str, float] = {}
        self.stock: dict[str, int | None] = {}
        self.stock_mode = "async"
        self.image_pull_errors: list[re.Pattern[str]] = []
        self._windows: dict[str, tuple[float, int]] = {}
        self.calls: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # Every call in order, with its wall time and the caller's User-Agent (vk-eci names its replica in
        # it): which replica of a node wrote when (the leader election tests). The newest JOURNAL_SIZE.
        self.journal: deque[tuple[float, str, str, str]] = deque(maxlen=JOURNAL_SIZE)

    # ---- configuration -----------------------------------------------------------------------------
    def update(self, spec: Mapping[str, Any]) -> None:
        """Apply a (partial) fault specification; keys not given keep their value."""
        known = {
            "latency",
            "errors",
            "rate_limits",
            "drop_response",
            "stock",
            "stock_mode",
            "image_pull_errors",
            "seed",
        }
        unknown = set(spec) - known
        if unknown:
            raise FaultError(f"faults: unknown key(s) {', '.join(sorted(unknown))}")
        with self._lock:
            if "seed" in spec:
                self._rng.seed(spec["seed"])
            if "latency" in spec:
                lat = spec["latency"] or {}
                if not isinstance(lat, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 60 for v in lat.values()
                ):
                    raise FaultError("faults: latency must map action (or *) to seconds between 0 and 60")
                self.latency = {str(k): float(v) for k, v in lat.items()}
            if "errors" in spec:
                self.errors = [self._error_rule(i, r) for i, r in enumerate(spec["errors"] or [])]
            if "rate_limits" in spec:
                rl = spec["rate_limits"] or {}
                if not isinstance(rl, dict):
                    raise FaultError("faults: rate_limits must be {enabled: bool, per_minute: {action: n}}")
                self.rate_limits_enabled = bool(rl.get("enabled", True))
                per = rl.get("per_minute") or {}
                if not all(isinstance(v, int) and v > 0 for v in per.values()):
                    raise FaultError("faults: rate_limits.per_minute values must be positive integers")
                self.per_minute = {**DEFAULT_RATE_LIMITS, **per}
                self._windows.clear()
            if "drop_response" in spec:
                dr = spec["drop_response"] or {}
                if not isinstance(dr, dict):
                    raise FaultError("faults: drop_response must map action (or *) to a probability")
                self.drop_response = {str(k): _rate(v, f"drop_response.{k}") for k, v in dr.items()}
            if "stock" in spec:
                st = spec["stock"] or {}
                if not isinstance(st, dict) or not all(
                    v is None or (isinstance(v, int) and v >= 0) for v in st.values()
                ):
                    raise FaultError("faults: stock must map zone to a count >= 0 or null (unlimited)")
                self.stock = dict(st)
            if "image_pull_errors" in spec:
                pats = spec["image_pull_errors"] or []
                if not isinstance(pats, list) or not all(isinstance(x, str) for x in pats):
                    raise FaultError("faults: image_pull_errors must be a list of regular expressions over image names")
                try:
                    self.image_pull_errors = [re.compile(x) for x in pats]
                except re.error as e:
                    raise FaultError(f"faults: image_pull_errors: bad regular expression: {e}") from None
            if "stock_mode" in spec:
                if spec["stock_mode"] not in ("async", "sync"):
                    raise FaultError("faults: stock_mode must be async or sync")
                self.stock_mode = spec["stock_mode"]

    @staticmethod
    def _error_rule(i: int, r: Any) -> dict[str, Any]:
        if not isinstance(r, dict) or "code" not in r:
            raise FaultError(f"faults: errors[{i}] needs at least a code")
        status = r.get(
            "status", 503 if r["code"] in ("ServiceUnavailable",) else 500 if r["code"] == "InternalError" else 400
        )
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise FaultError(f"faults: errors[{i}].status must be an HTTP error status (400-599)")
        times = r.get("times")
        if times is not None and (not isinstance(times, int) or times < 0):
            raise FaultError(f"faults: errors[{i}].times must be a count >= 0")
        retry = r.get("retry_after_ms")
        if retry is None and str(r["code"]).startswith("Throttling"):
            retry = 1000
        return {
            "action": str(r.get("action", "*")),
            "code": str(r["code"]),
            "status": status,
            "message": str(r.get("message") or _DEFAULT_MESSAGES.get(r["code"], "Injected fault.")),
            "rate": _rate(r.get("rate", 1.0), f"errors[{i}].rate"),
            "times": times,
            "retry_after_ms": int(retry) if retry else None,
        }

    def view(self) -> dict[str, Any]:
        """The current fault set, as accepted by `update`."""
        with self._lock:
            return {
                "latency": dict(self.latency),
                "errors": [dict(e) for e in self.errors],
                "rate_limits": {"enabled": self.rate_limits_enabled, "per_minute": dict(self.per_minute)},
                "drop_response": dict(self.drop_response),
                "stock": dict(self.stock),
                "stock_mode": self.stock_mode,
                "image_pull_errors": [p.pattern for p in self.image_pull_errors],
            }

    # ---- the request path --------------------------------------------------------------------------
    def delay_for(self, action: str) -> float:
        """Injected latency for `action` (0 on the normal hot path)."""
        if not self.latency:
            return 0.0
        return self.latency.get(action, self.latency.get("*", 0.0))

    def check(self, action: str) -> None:
        """Raise the injected error or throttling for this call, if any."""
        if self.rate_limits_enabled:
            self._rate_limit(action)
        if not self.errors:
            return
        with self._lock:
            for rule in self.errors:
                if rule["action"] not in ("*", action):
                    continue
                if rule["times"] is not None and rule["times"] <= 0:
                    continue
                if self._rng.random() >= rule["rate"]:
                    continue
                if rule["times"] is not None:
                    rule["times"] -= 1
                headers = {"x-acs-retry-after": str(rule["retry_after_ms"])} if rule["retry_after_ms"] else {}
                raise ApiError(rule["code"], rule["message"], rule["status"], headers)

    def _rate_limit(self, action: str) -> None:
        limit = self.per_minute.get(action)
        if not limit:
            return
        now = time.monotonic()
        with self._lock:
            start, count = self._windows.get(action, (now, 0))
            if now - start >= 60:
                start, count = now, 0
            if count >= limit:
                raise throttled(int((start + 60 - now) * 1000))
            self._windows[action] = (start, count + 1)

    def should_drop(self, action: str) -> bool:
        """Whether to swallow the reply of this (already executed) call."""
        if not self.drop_response:
            return False
        rate = self.drop_response.get(action, self.drop_response.get("*", 0.0))
        with self._lock:
            return rate > 0 and self._rng.random() < rate

    # ---- accounting --------------------------------------------------------------------------------
    def count(self, action: str, outcome: str, agent: str = "") -> None:
        """Count one call of `action` ending in `outcome` ("OK", an error code, or "Dropped") by `agent`."""
        with self._lock:
            self.calls[action][outcome] += 1
            self.journal.append((time.time(), action, outcome, agent))

    def call_log(self) -> dict[str, Any]:
        """{"calls": [{"at": unix seconds, "action", "outcome", "user_agent"}, ...]}, oldest first."""
        with self._lock:
            entries = list(self.journal)
        keys = ("at", "action", "outcome", "user_agent")
        return {"calls": [dict(zip(keys, entry, strict=True)) for entry in entries]}

    def call_counts(self) -> dict[str, Any]:
        """{"total": n, "by_action": {action: {"total": n, "outcomes": {outcome: n}}}}."""
        with self._lock:
            by = {a: {"total": sum(o.values()), "outcomes": dict(o)} for a, o in self.calls.items()}
        return {"total": sum(v["total"] for v in by.values()), "by_action": by}

    def reset_calls(self) -> None:
        """Zero the counters."""
        with self._lock:
            self.calls.clear()
            self.journal.clear()
