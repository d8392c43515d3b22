"""The fake's synthetic metric counters behave like a real cgroup's: what metrics-server computes from them
(counter delta / time delta) is the rate the samples report between them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fakes.eci import metrics
from fakes.eci.group import Group

RUNNING_AT = 1_700_000_003.5  # not on a 15 s boundary


def group(gid: str = "eci-test0001") -> Group:
    spec = {
        "Cpu": 2.0,
        "Memory": 4.0,
        "Containers": [{"Name": "a", "Cpu": 1.5, "Memory": 2.0}, {"Name": "b", "Cpu": 0.5, "Memory": 2.0}],
    }
    return Group(gid, spec, "cn-hangzhou-a", "vsw", "10.0.0.2", "", RUNNING_AT - 2, RUNNING_AT - 1, RUNNING_AT)


def cumulative(g: Group, ts: float, container: int = 0) -> int:
    return int(metrics.record(g, ts, 1234, None)["Containers"][container]["CPU"]["UsageCoreNanoSeconds"])


def test_counter_is_the_integral_of_the_reported_rate() -> None:
    g = group()
    total = 0.0
    ts = RUNNING_AT
    while ts < RUNNING_AT + 3600:
        step = min(15 - ts % 15, RUNNING_AT + 3600 - ts) or 15  # to the next bucket boundary
        total += metrics.record(g, ts, 1234, None)["Containers"][0]["CPU"]["UsageNanoCores"] * step
        ts += step
    assert abs(cumulative(g, RUNNING_AT + 3600) - total) / total < 1e-6


@given(st.floats(0, 30 * 86400), st.floats(1, 86400))
def test_rate_over_two_samples_stays_within_the_synthetic_band(after: float, span: float) -> None:
    g = group()
    t1 = RUNNING_AT + after
    rate = (cumulative(g, t1 + span) - cumulative(g, t1)) / span  # ns per s = nano-cores
    assert 0.02 * 1.5e9 - 1 <= rate <= 0.12 * 1.5e9 + 1
