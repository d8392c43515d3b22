"""Leader election (controllers/leader.py): client-go's record and semantics, the resourceVersion
precondition that keeps two candidates from both winning, and the write gate that closes on the leader's
own clock before any standby may take over (also when the clocks' wall times disagree)."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import pytest
import responses

from vkeci.clients.eci import EciClient, EciError
from vkeci.clients.kube import Credentials, KubeClient, KubeError
from vkeci.config import Config, ConfigError, LeaderSettings, leader_settings
from vkeci.controllers.leader import LeaderElector

PATH = "/apis/coordination.k8s.io/v1/namespaces/vkeci-system/leases/vkeci-vk"


class Leases:
    """An API server's Lease endpoint: GET, POST (409 when it exists), PUT with a resourceVersion
    precondition (409 when stale); ``before_put`` runs once, before the next PUT is applied (a race)."""

    def __init__(self) -> None:
        self.lease: dict | None = None
        self.rv = 0
        self.before_put = None
        self.puts = 0

    def get(self, path: str, params: dict | None = None) -> dict:
        assert path == PATH
        if self.lease is None:
            raise KubeError(404, "NotFound", "no lease", "GET", path)
        return copy.deepcopy(self.lease)

    def post(self, path: str, body: dict) -> dict:
        if self.lease is not None:
            raise KubeError(409, "AlreadyExists", "exists", "POST", path)
        return self._store(body)

    def put(self, path: str, body: dict) -> dict:
        hook, self.before_put = self.before_put, None
        if hook:
            hook()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "the object has been modified", "PUT", path)
        self.puts += 1
        return self._store(body)

    def _store(self, body: dict) -> dict:
        self.rv += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.lease)

    @property
    def spec(self) -> dict:
        assert self.lease is not None
        return self.lease["spec"]


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def settings(identity: str, **timings: float) -> LeaderSettings:
    values = {"lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0, **timings}
    return LeaderSettings(True, "vkeci-system", "vkeci-vk", identity, **values)


def elector(api: Leases, identity: str, clock: Clock, wall: str = "2026-01-01T00:00:00.000000Z") -> LeaderElector:
    return LeaderElector(api, settings(identity), clock=clock, now=lambda: wall)  # type: ignore[arg-type]


def test_first_candidate_creates_the_lease_with_client_gos_record():
    api, clock = Leases(), Clock()
    a = elector(api, "a", clock)
    assert a.try_acquire_or_renew()
    assert api.spec == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-01T00:00:00.000000Z",
        "renewTime": "2026-01-01T00:00:00.000000Z",
        "leaseTransitions": 0,
    }
    assert a.may_write()


def test_renewal_keeps_acquire_time_and_transitions_and_carries_the_resource_version():
    api, clock = Leases(), Clock()
    a = elector(api, "a", clock)
    a.try_acquire_or_renew()
    a.now = lambda: "2026-01-01T00:00:02.000000Z"
    clock.t += 2
    assert a.try_acquire_or_renew()
    assert api.spec["acquireTime"] == "2026-01-01T00:00:00.000000Z"
    assert api.spec["renewTime"] == "2026-01-01T00:00:02.000000Z"
    assert api.spec["leaseTransitions"] == 0
    assert api.rv == 2


def test_standby_waits_a_lease_duration_from_its_own_observation_then_takes_over():
    api, clock_a, clock_b = Leases(), Clock(), Clock(50.0)
    a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b sees the record for the first time: 15 s from now
    clock_b.t += 14.9
    assert not b.try_acquire_or_renew() and not b.may_write()
    clock_b.t += 0.2
    assert b.try_acquire_or_renew()
    assert api.spec["holderIdentity"] == "b" and api.spec["leaseTransitions"] == 1


def test_each_renewal_seen_restarts_the_standbys_wait():
    api, clock_a, clock_b = Leases(), Clock(), Clock()
    a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
    a.try_acquire_or_renew()
    for step in range(1, 6):
        clock_a.t += 10
        clock_b.t += 10
        a.now = lambda step=step: f"2026-01-01T00:00:{10 * step:02d}.000000Z"
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert api.spec["holderIdentity"] == "a"


def test_clock_skew_of_wall_times_changes_nothing():
    # The leader's wall clock is an hour behind: its renewTime looks long expired to anyone comparing wall
    # clocks. The standby compares nothing but its own monotonic clock, so it still waits.
    api, clock_a, clock_b = Leases(), Clock(), Clock()
    a = elector(api, "a", clock_a, wall="2026-01-01T00:00:00.000000Z")
    b = elector(api, "b", clock_b, wall="2026-01-01T01:00:00.000000Z")
    a.try_acquire_or_renew()
    clock_b.t += 5
    assert not b.try_acquire_or_renew()


def test_two_candidates_racing_for_an_expired_lease_never_both_win():
    api, clock = Leases(), Clock()
    old = elector(api, "old", clock)
    old.try_acquire_or_renew()
    b, c = elector(api, "b", clock), elector(api, "c", clock)
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock.t += 16
    # c reads the same resourceVersion as b, and b's PUT lands between c's read and c's PUT.
    api.before_put = lambda: b.try_acquire_or_renew()
    won_c = c.try_acquire_or_renew()
    assert api.spec["holderIdentity"] == "b"
    assert not won_c and not c.may_write()
    assert b.may_write()


def test_the_gate_closes_at_the_renew_deadline_before_a_standby_may_take_over():
    api, clock_a, clock_b = Leases(), Clock(), Clock()
    a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()  # b observes the record at the same moment (the best case for b)
    # a is frozen (SIGSTOP, a long pause): its clock runs on, it renews nothing.
    clock_a.t += 9.9
    assert a.may_write()
    clock_a.t += 0.2
    assert not a.may_write()  # 10.1 s after the start of its last renewal
    clock_b.t += 10.1
    assert not b.try_acquire_or_renew()  # b may not take over for another 4.9 s
    assert a.counts == {"permitted": 1, "refused": 1}


def test_a_renewal_started_before_a_pause_counts_from_its_start():
    # The attempt's clock is read before the GET: a pause inside the attempt shortens the leader's time.
    api, clock = Leases(), Clock()
    a = elector(api, "a", clock)
    real_get = api.get

    def slow_get(path, params=None):
        clock.t += 9.0
        return real_get(path, params)

    api.get = slow_get  # type: ignore[method-assign]
    assert a.try_acquire_or_renew()
    clock.t += 1.1
    assert not a.may_write()


def test_release_lets_a_standby_take_over_at_once():
    api, clock_a, clock_b = Leases(), Clock(), Clock()
    a, b = elector(api, "a", clock_a), elector(api, "b", clock_b)
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert api.spec["holderIdentity"] == "" and not a.may_write()
    assert b.try_acquire_or_renew()


def test_run_pauses_writes_past_the_deadline_and_resumes_when_the_lease_is_still_ours():
    # An API server outage longer than the renew deadline: the gate closes on time; nobody else took the
    # Lease (it still names us, and a take-over would have changed it), so a later renewal reopens it.
    api = Leases()
    fast = settings("a", lease_duration=0.9, renew_deadline=0.6, retry_period=0.1)
    a = LeaderElector(api, fast)  # type: ignore[arg-type]
    led, lost, stop = threading.Event(), threading.Event(), threading.Event()
    thread = threading.Thread(target=a.run, args=(stop, led.set, lost.set), daemon=True)
    thread.start()
    assert led.wait(5)
    assert a.may_write() and not lost.is_set()
    real_put = api.put

    def refuse(path, body):
        raise KubeError(0, "Unreachable", "API server did not answer", "PUT", path)

    started = time.monotonic()
    api.put = refuse  # type: ignore[method-assign]
    while a.is_leader() and time.monotonic() - started < 5:
        time.sleep(0.02)
    assert time.monotonic() - started < 0.6 + 0.2
    time.sleep(0.5)
    assert not a.may_write() and not lost.is_set()
    api.put = real_put  # type: ignore[method-assign]
    deadline = time.monotonic() + 5
    while not a.is_leader() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert a.may_write() and not lost.is_set()
    stop.set()
    thread.join(5)


def test_run_steps_down_at_once_when_another_holder_is_seen():
    api = Leases()
    fast = settings("a", lease_duration=0.9, renew_deadline=0.6, retry_period=0.1)
    a = LeaderElector(api, fast)  # type: ignore[arg-type]
    led, lost, stop = threading.Event(), threading.Event(), threading.Event()
    threading.Thread(target=a.run, args=(stop, led.set, lost.set), daemon=True).start()
    assert led.wait(5)
    api.lease["spec"]["holderIdentity"] = "intruder"  # type: ignore[index]
    api.rv += 1
    api.lease["metadata"]["resourceVersion"] = str(api.rv)  # type: ignore[index]
    assert lost.wait(2)
    assert not a.may_write()
    stop.set()


# ---- the gate in the clients -------------------------------------------------------------------------


@responses.activate
def test_kube_client_sends_no_write_when_the_gate_is_closed_and_reads_still():
    responses.get("http://api.test/api/v1/pods", json={"items": []})
    kube = KubeClient(Credentials(host="http://api.test"), write_gate=lambda: False)
    kube.get("/api/v1/pods")
    with pytest.raises(KubeError) as err:
        kube.patch("/api/v1/namespaces/d/pods/p/status", {"status": {}})
    assert err.value.reason == "NotLeader"
    assert [c.request.method for c in responses.calls] == ["GET"]
    assert kube.with_priority(True).write_gate is kube.write_gate


def test_eci_client_sends_no_group_change_when_the_gate_is_closed():
    # The real SDK, to an endpoint where nothing listens: the gate is asked in the HTTP adapter, right before
    # the send (``clients.sendgate``), so a closed gate is NotLeader, never a connection attempt (NoResponse).
    from vkeci.clients.eci import new_client
    from vkeci.config import Secret

    config = Config(
        region="cn-hangzhou",
        access_key_id=Secret("a"),
        access_key_secret=Secret("b"),
        eci_endpoint="127.0.0.1:1",
        eci_protocol="http",
    )
    asked: list[bool] = []

    def gate() -> bool:
        asked.append(True)
        return False

    eci = EciClient(new_client(config, connect_timeout_ms=500, read_timeout_ms=500), "cn-hangzhou", write_gate=gate)
    with pytest.raises(EciError) as err:
        eci.delete("eci-1")
    assert err.value.code == "NotLeader" and err.value.transient
    assert len(asked) == 1  # once per write, at the send
    with pytest.raises(EciError) as read:
        eci.describe(["eci-1"])  # reads are never gated: this one reaches the dead endpoint
    assert read.value.code == "NoResponse" and len(asked) == 1


def test_the_gate_is_asked_at_the_send_not_when_the_call_starts():
    # A replica frozen between the start of a call and its send must not send when it resumes (test_ha found
    # one ECI create 0.07 s after the resume): the gate closing during the call keeps the request unsent.
    from vkeci.clients import sendgate

    sent: list[str] = []

    class Adapter:
        def send(self, request: str) -> str:
            sent.append(request)
            return "ok"

    adapter = sendgate.guard_adapter(Adapter())
    assert sendgate.guard_adapter(adapter) is adapter  # once
    is_open = [True]
    with sendgate.gated(lambda: is_open[0]):
        assert adapter.send("first") == "ok"
        is_open[0] = False  # the lease ran out mid-call
        with pytest.raises(sendgate.GateClosed):
            adapter.send("second")
    assert sendgate.refused() and sent == ["first"]
    assert adapter.send("ungated") == "ok"  # outside a gated call (reads, standbys' GETs): no check


# ---- the settings ------------------------------------------------------------------------------------


def test_settings_default_to_client_gos_timings_and_the_daemons_namespace(tmp_path: Path):
    ns = tmp_path / "namespace"
    ns.write_text("vkeci-system\n")
    s = leader_settings(Config(node_name="vk-a"), "vkeci-7d9f-x2", "1a2b", str(ns))
    assert (s.lease_duration, s.renew_deadline, s.retry_period) == (15.0, 10.0, 2.0)
    assert (s.namespace, s.name, s.identity, s.enabled) == ("vkeci-system", "vkeci-vk-a", "vkeci-7d9f-x2_1a2b", True)
    outside = leader_settings(Config(node_name="vk-a"), "laptop", "1a2b", str(tmp_path / "none"))
    assert outside.namespace == "default"
    given = leader_settings(Config(leader_namespace="ops", leader_identity="r1"), "h", "s", str(ns))
    assert (given.namespace, given.identity) == ("ops", "r1")


@pytest.mark.parametrize(
    ("duration", "deadline", "retry", "named"),
    [(10.0, 10.0, 2.0, "VKECI_LEADER_LEASE_DURATION"), (15.0, 2.0, 2.0, "VKECI_LEADER_RENEW_DEADLINE")],
)
def test_timings_that_cannot_keep_leaders_apart_are_refused(duration, deadline, retry, named):
    config = Config(leader_lease_duration=duration, leader_renew_deadline=deadline, leader_retry_period=retry)
    with pytest.raises(ConfigError, match=named):
        leader_settings(config, "h", "s")
