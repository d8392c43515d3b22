"""Whether ECI is reachable, from a stream of ping outcomes, with hysteresis. Pure (times are passed in).

Under intermittent faults one failed ping used to flip the node (223 flips in 18 minutes of the fault run,
each a node PATCH and a taint change). So: the first success makes ECI reachable again at once; failures make
it unreachable only when they are sustained:

* an answer that is an error, a timeout or a reset connection counts as unreachable once failures have lasted
  ``unreachable_after`` seconds without a success in between (30 s: pinged every ``retry_interval`` = 2 s
  that is 15 failures in a row; at a 1-in-3 failure rate the odds of that are 1 in 14 million);
* a refused connection (nothing listens at the endpoint, or the address does not resolve) is a hard outage,
  not a flake: ``refused_failures`` of them in a row (2, about 2 s apart) are enough;
* before the first success (a daemon starting during an outage) ``refused_failures`` failures of any kind in
  a row (2, about 2 s apart) are enough: a daemon restarted during an outage says so within seconds, and one
  flaky answer does not (the fault run: 7 of 20 restarts called ECI unreachable on one failed first ping, and
  55-77 new pods were held Pending for it).

A throttled answer is not a failure: ECI answered (the caller counts it as a success).

While failing, the ping runs every ``retry_interval`` instead of every ``ping_interval`` (``next_ping_in``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReachabilitySettings:
    """The thresholds; their defaults are ``config.NodeSettings``' (ping_interval, ping_retry_interval,
    eci_unreachable_after, eci_refused_failures)."""

    ping_interval: float
    retry_interval: float
    unreachable_after: float
    refused_failures: int


class Reachability:
    """The state machine: ``observe`` every ping outcome; ``reachable`` and ``message`` say the verdict."""

    def __init__(self, settings: ReachabilitySettings) -> None:
        self.settings = settings
        self.reachable = True
        self.confirmed = False  # a ping has succeeded since start-up
        self.message = ""  # the last failure, for the node condition
        self.failing_since: float | None = None  # time of the first failure of the current streak
        self.failures = 0  # consecutive failures
        self.refused = 0  # consecutive refused connections

    def observe(self, now: float, error: str | None = None, *, refused: bool = False) -> bool:
        """Take one ping outcome at ``now`` (``error`` None: success); True when ``reachable`` changed."""
        before = self.reachable
        if error is None:
            self.reachable, self.confirmed, self.message = True, True, ""
            self.failing_since, self.failures, self.refused = None, 0, 0
            return not before
        if self.failing_since is None:
            self.failing_since = now
        self.failures += 1
        self.refused = self.refused + 1 if refused else 0
        self.message = error
        sustained = self.failures >= 2 and now - self.failing_since >= self.settings.unreachable_after
        # Before any success nothing says ECI works: a daemon starting during an outage says so soon.
        early = not self.confirmed and self.failures >= self.settings.refused_failures
        if sustained or self.refused >= self.settings.refused_failures or early:
            self.reachable = False
        return before != self.reachable

    def next_ping_in(self) -> float:
        """Seconds to the next ping: quicker while failing, to confirm or clear an outage soon."""
        return self.settings.retry_interval if self.failures else self.settings.ping_interval
