"""High availability on the real control plane and the fake ECI (issue 16): two replicas of one node's
daemon elect a leader; kill -9 of the leader in a 200-pod burst makes the standby take over with no
duplicate, orphan or Failed pod; a frozen leader (SIGSTOP past its lease) writes nothing once resumed;
two nodes on one account never touch each other's groups."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from typing import Any

from vkfixtures import *  # noqa: F403 - pytest fixtures: daemon_factory, fake_eci, kube

from e2e import harness
from e2e.harness import fake_call_log, fake_groups, nginx_deployment, set_faults, wait_for

WRITES = {"CreateContainerGroup", "DeleteContainerGroup", "UpdateContainerGroup", "RestartContainerGroup"}
LEASE = "/apis/coordination.k8s.io/v1/namespaces/default/leases/vkeci-{node}"


def replica(daemon_factory: Any, node: str, name: str, tmp_path: Any) -> Any:
    """A replica of ``node``'s daemon, identified as ``name`` in the Lease and in ECI's user agent."""
    stats = tmp_path / f"stats-{name}.json"
    proc = daemon_factory(node=node, env={"VKECI_LEADER_IDENTITY": name}, extra_args=[f"--stats-file={stats}"])
    proc.identity, proc.stats_path = name, stats
    return proc


def holder(kube: Any, node: str) -> str:
    try:
        return str(kube.get(LEASE.format(node=node))["spec"].get("holderIdentity") or "")
    except Exception:
        return ""


def writes_by(log: list[dict], identity: str) -> list[float]:
    return [c["at"] for c in log if c["action"] in WRITES and c["user_agent"].endswith(f"vkeci/{identity}")]


def _settled(kube: Any, fake: Any, namespace: str, node: str, app: str, replicas: int) -> Any:
    """The harness's ``settled``, over the node's groups of any status: a take-over leaves no group without
    a pod, not even a finished one."""
    return harness.settled(kube, fake, namespace, node, app, replicas, live_only=False)


def test_kill_9_of_the_leader_in_a_200_pod_burst(daemon_factory, kube, fake_eci, namespace, tmp_path):
    node = f"vk-ha-{uuid.uuid4().hex[:6]}"
    a = replica(daemon_factory, node, "replica-a", tmp_path)
    wait_for(lambda: kube.ready(node) == "True", 60, "node Ready (replica-a leads)")
    assert holder(kube, node) == "replica-a"
    b = replica(daemon_factory, node, "replica-b", tmp_path)
    wait_for(lambda: "waiting to lead" in b.log_text() and "pods listed" in b.log_text(), 60, "replica-b standing by")
    # Creates slowed down so that the kill lands in the middle of the burst.
    set_faults(fake_eci, {"latency": {"CreateContainerGroup": 0.3}})
    kube.create(namespace, nginx_deployment("burst", node, 200))
    wait_for(lambda: len(fake_groups(fake_eci, node)) >= 40, 120, "the first 40 groups")
    killed_at = time.time()
    a.kill()
    made = len(fake_groups(fake_eci, node))
    assert made < 200, "the leader finished before it was killed; the test proves nothing"
    set_faults(fake_eci, {"latency": {}})
    wait_for(lambda: holder(kube, node) == "replica-b", 40, "replica-b holding the Lease")
    live, groups = wait_for(lambda: _settled(kube, fake_eci, namespace, node, "burst", 200), 300, "200 pods Running")
    assert len(groups) == 200 and len(live) == 200
    failed = [p["metadata"]["name"] for p in kube.pods(namespace, "app=burst") if p["status"].get("phase") == "Failed"]
    assert not failed, f"pods wrongly Failed: {failed}"
    log = fake_call_log(fake_eci)
    old, new = writes_by(log, "replica-a"), writes_by(log, "replica-b")
    assert old and new and max(old) <= killed_at + 0.5
    b.stop()
    first_write = json.loads(b.stats_path.read_text())["leader"]["first_write_at"]
    gap = first_write - max(old)
    print(
        f"fail-over: last ECI write of the old leader -> first write of the new {gap:.2f} s "
        f"(its first ECI write {min(new) - max(old):.2f} s); kill -> first write {first_write - killed_at:.2f} s; "
        f"{made} groups made before the kill"
    )
    # The Lease bounds it: the leader renews every 2 s, the standby sees each renewal within 0.5 s (its
    # read period) and takes over 15 s after the last one it saw, then registers the node (its first write).
    # So 13-15.5 s plus the API server's latency; under 15 s unless the kill lands within ~0.7 s of a renewal.
    assert gap <= 15.0 + 0.5 + 1.0, f"take-over took {gap:.1f} s"
    lease = kube.get(LEASE.format(node=node))["spec"]
    assert lease["leaseTransitions"] == 1
    node_obj = kube.node(node)  # the new leader pointed the node's kubelet endpoint at itself
    assert node_obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == int(b.env["KUBELET_PORT"])


def test_a_frozen_leader_writes_nothing_after_it_lost_the_lease(daemon_factory, kube, fake_eci, namespace, tmp_path):
    node = f"vk-ha-{uuid.uuid4().hex[:6]}"
    a = replica(daemon_factory, node, "frozen-a", tmp_path)
    wait_for(lambda: kube.ready(node) == "True", 60, "node Ready (frozen-a leads)")
    b = replica(daemon_factory, node, "frozen-b", tmp_path)
    wait_for(lambda: "waiting to lead" in b.log_text() and "pods listed" in b.log_text(), 60, "frozen-b standing by")
    set_faults(fake_eci, {"latency": {"CreateContainerGroup": 0.3}})
    kube.create(namespace, nginx_deployment("frozen", node, 60))
    wait_for(lambda: len(fake_groups(fake_eci, node)) >= 10, 120, "the first 10 groups")
    assert a.proc is not None
    os.kill(a.proc.pid, signal.SIGSTOP)
    frozen_at = time.time()
    try:
        wait_for(lambda: holder(kube, node) == "frozen-b", 40, "frozen-b taking the Lease")
        time.sleep(3)  # frozen-b writes for a while
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    resumed_at = time.time()
    set_faults(fake_eci, {"latency": {}})
    wait_for(lambda: a.proc is not None and a.proc.poll() is not None, 30, "frozen-a exiting after the lost lease")
    assert a.proc.returncode == 1
    assert "leader lease lost" in a.log_text()
    wait_for(lambda: _settled(kube, fake_eci, namespace, node, "frozen", 60), 240, "60 pods Running")
    log = fake_call_log(fake_eci)
    after = [t for t in writes_by(log, "frozen-a") if t > frozen_at + 0.5]
    assert not after, f"frozen-a wrote to ECI {len(after)} times after it was frozen (resumed at {resumed_at:.1f})"
    stats = json.loads(a.stats_path.read_text())
    leader = stats["leader"]
    # Its own gate: the last write it let through was before the freeze; what it tried after was refused.
    assert leader["lost"] and leader["last_write_at"] <= frozen_at + 0.5 and leader["writes_refused"] > 0
    print(f"frozen leader: {leader}")


def test_two_nodes_on_one_account_never_touch_each_others_groups(daemon_factory, kube, fake_eci, namespace, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    node_a, node_b = f"vk-a-{suffix}", f"vk-b-{suffix}"
    a = replica(daemon_factory, node_a, "node-a-1", tmp_path)
    replica(daemon_factory, node_b, "node-b-1", tmp_path)
    wait_for(lambda: kube.ready(node_a) == "True" and kube.ready(node_b) == "True", 90, "both nodes Ready")
    kube.create(namespace, nginx_deployment("on-a", node_a, 100))
    kube.create(namespace, nginx_deployment("on-b", node_b, 100))
    wait_for(lambda: _settled(kube, fake_eci, namespace, node_a, "on-a", 100), 300, "100 pods Running on vk-a")
    wait_for(lambda: _settled(kube, fake_eci, namespace, node_b, "on-b", 100), 300, "100 pods Running on vk-b")
    groups_a = {g["ContainerGroupId"] for g in fake_groups(fake_eci, node_a)}
    killed_at = time.time()
    a.kill()  # for good: vk-a's groups have no daemon now
    time.sleep(12)  # more than two of vk-b's orphan sweeps (every 5 s)
    assert {g["ContainerGroupId"] for g in fake_groups(fake_eci, node_a)} == groups_a
    assert all(g["Status"] == "Running" for g in fake_groups(fake_eci, node_a))
    deletes_b = [c for c in fake_call_log(fake_eci) if c["action"] == "DeleteContainerGroup"]
    assert not deletes_b, f"{len(deletes_b)} groups deleted while nobody deleted a pod"
    # vk-a comes back, as a restarted container of the same replica (same identity: it renews its own Lease at
    # once rather than waiting 15 s for it, so the node is back before the node controller's 40 s grace
    # marks its pods NotReady), and adopts every group.
    replica(daemon_factory, node_a, "node-a-1", tmp_path)
    wait_for(lambda: _settled(kube, fake_eci, namespace, node_a, "on-a", 100), 120, "vk-a's 100 pods Running again")
    assert {g["ContainerGroupId"] for g in fake_groups(fake_eci, node_a)} == groups_a
    log = fake_call_log(fake_eci)
    creates = [
        c["at"] for c in log if c["action"] == "CreateContainerGroup" and c["user_agent"].endswith("vkeci/node-a-1")
    ]
    recreated = [t for t in creates if t > killed_at]
    assert not recreated, f"{len(recreated)} groups re-created after the restart"
