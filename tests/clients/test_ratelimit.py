"""Token buckets: rates, bursts, the priority reserve, and the ECI per-action table."""

import pytest

from vkeci.clients.ratelimit import ECI_LIMITS_PER_MINUTE, EciLimiter, RateLimitTimeout, TokenBucket, kube_bucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_burst_then_rate():
    clock = Clock()
    bucket = TokenBucket(2.0, 4, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        bucket.acquire()
    assert clock.now == 0.0
    bucket.acquire()
    assert clock.now == pytest.approx(0.5)


def test_priority_uses_the_reserve_that_normal_callers_leave():
    clock = Clock()
    bucket = TokenBucket(1.0, 10, reserve=3, clock=clock, sleep=clock.sleep)
    taken = 0
    while bucket.try_acquire() == 0.0:
        taken += 1
    assert taken == 7  # three tokens stay for heartbeats
    for _ in range(3):
        assert bucket.try_acquire(priority=True) == 0.0
    assert bucket.try_acquire(priority=True) > 0


def test_acquire_times_out():
    clock = Clock()
    bucket = TokenBucket(0.1, 1, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    with pytest.raises(RateLimitTimeout):
        bucket.acquire(timeout=1.0)


def test_eci_buckets_follow_the_documented_limits():
    limiter = EciLimiter()
    create = limiter.bucket("CreateContainerGroup")
    assert create.burst == 100
    # Burst plus a minute of refill stays within the limit, so no 60 s window can be throttled.
    assert create.burst + 60 * create.rate == pytest.approx(ECI_LIMITS_PER_MINUTE["CreateContainerGroup"])
    assert limiter.bucket("DescribeContainerGroupStatus").rate > limiter.bucket("DescribeContainerGroups").rate


def test_eci_limits_are_configurable_and_can_be_disabled():
    limiter = EciLimiter({"CreateContainerGroup": 600})
    assert limiter.bucket("CreateContainerGroup").rate == pytest.approx(9.0)  # (600 - 60 burst) / 60 s
    off = EciLimiter(enabled=False)
    for _ in range(10000):
        off.acquire("CreateContainerGroup")


def test_kube_bucket_reserves_some_for_priority():
    bucket = kube_bucket(50, 100)
    assert bucket.reserve == 10
    assert kube_bucket(5, 10).reserve == 2


def test_bad_parameters():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


def test_a_rate_share_scales_the_documented_limits_not_the_explicit_ones():
    # Two nodes on one account at 0.5 each stay under the account's limits together (issue 16).
    half = EciLimiter({"DeleteContainerGroup": 700}, share=0.5)
    create = half.bucket("CreateContainerGroup")
    limit = ECI_LIMITS_PER_MINUTE["CreateContainerGroup"] // 2
    assert create.burst == limit // 10
    assert abs(create.rate * 60 + create.burst - limit) < 1e-6
    delete = half.bucket("DeleteContainerGroup")
    assert abs(delete.rate * 60 + delete.burst - 700) < 1e-6
    assert half.bucket("SomethingNew").burst == 25  # the default 500 per minute, halved
