"""An ECI outage evicts nothing (#12 item 2), and a deleted Node comes back within 10 s (#12 item 4).

The outage test runs the real node lifecycle and taint eviction controllers of the local control plane
(``--controllers=*``, node-monitor-grace-period 20 s, monitor period 5 s: e2e/cluster.py) beside a second
Node that stays Ready (``ReadyNode``), so that the zone is not fully disrupted and eviction is live. Before
the fix the node went Ready=False within one ping (2 s here), was tainted not-ready:NoExecute at the next
monitor pass, and pods tolerating that for 20 s were evicted about 30 s into the outage.
"""

from __future__ import annotations

import time
import uuid

from vkfixtures import *  # noqa: F403 - pytest fixtures: daemon, daemon_factory, fake_eci, kube

from e2e.harness import ReadyNode, fake_calls, fake_groups, placement, running, set_faults, wait_for
from vkeci.core.node import ECI_CONDITION, UNREACHABLE_TAINT

# Short, so the test is: the pods below tolerate a NotReady or unreachable node for 20 s only.
TOLERATE_20_S = [
    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 20}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
]
# The outage lasts longer than the node monitor's grace period plus the toleration, with margin.
OUTAGE = 20 + 20 + 20


def _pod(name: str, node: str, *, bound: bool = False) -> dict:
    spec = {**placement(node), "containers": [{"name": "web", "image": "nginx:1.27"}]}
    spec["tolerations"] = spec["tolerations"] + TOLERATE_20_S
    if bound:  # bound by whoever creates it (no scheduler): what a pod bound just before the outage sees
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "outage"}}, "spec": spec}


def _condition(kube, node: str, kind: str) -> dict:
    conditions = (kube.node(node).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def _taint_keys(kube, node: str) -> set[str]:
    return {t["key"] for t in (kube.node(node).get("spec") or {}).get("taints") or []}


def test_an_eci_outage_longer_than_the_not_ready_toleration_evicts_nothing(daemon_factory, kube, fake_eci, namespace):
    with ReadyNode(kube, f"stand-in-{uuid.uuid4().hex[:6]}", {"topology.kubernetes.io/region": "cn-hangzhou"}) as other:
        # ECI counts as unreachable after 6 s of failures here (30 s by default) to keep the test short.
        proc = daemon_factory(extra_args=["--eci-unreachable-after=6"])
        wait_for(lambda: kube.ready(proc.node) == "True", 60, "virtual node Ready")
        for i in range(3):
            kube.create(namespace, _pod(f"web-{i}", proc.node))

        def all_running():
            pods = kube.pods(namespace, "app=outage")
            return pods if len(pods) == 3 and all(running(p) for p in pods) else None

        before = {p["metadata"]["uid"] for p in wait_for(all_running, 90, "3 pods Running")}
        groups = {g["ContainerGroupId"] for g in fake_groups(fake_eci, proc.node)}
        assert len(groups) == 3
        deletes_before = fake_calls(fake_eci)["by_action"].get("DeleteContainerGroup", {}).get("total", 0)

        started = time.monotonic()
        set_faults(fake_eci, {"errors": [{"action": "*", "code": "ServiceUnavailable"}]})
        down = wait_for(lambda: _condition(kube, proc.node, ECI_CONDITION).get("status") == "False", 60, "ECI down")
        assert down
        to_condition = time.monotonic() - started
        wait_for(lambda: UNREACHABLE_TAINT["key"] in _taint_keys(kube, proc.node), 15, "the unreachable taint")
        eci = _condition(kube, proc.node, ECI_CONDITION)
        assert eci["reason"] == "ECIUnreachable" and "ServiceUnavailable" in eci["message"]

        # A pod bound to the node during the outage waits, saying why.
        kube.create(namespace, _pod("late", proc.node, bound=True))

        def held():
            status = kube.pod(namespace, "late").get("status") or {}
            return status if status.get("reason") == "ECIUnreachable" else None

        status = wait_for(held, 30, "the new pod Pending with reason ECIUnreachable")
        assert status["phase"] == "Pending" and "created when ECI answers again" in status["message"]
        events = [e for e in kube.events(namespace, "late") if e.get("reason") == "ECIUnreachable"]
        assert events and events[0]["type"] == "Warning"

        # Hold the outage well past grace period + toleration, watching that nothing is evicted meanwhile.
        while time.monotonic() - started < OUTAGE:
            assert _condition(kube, proc.node, "Ready").get("status") == "True", "the node went NotReady"
            assert not {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"} & _taint_keys(
                kube, proc.node
            ), "the node lifecycle controller tainted the node NoExecute"
            evicted = [
                p["metadata"]["name"]
                for p in kube.pods(namespace, "app=outage")
                if p["metadata"].get("deletionTimestamp")
            ]
            assert not evicted, f"pods evicted during the ECI outage: {evicted}"
            assert other.ready() == "True"
            time.sleep(2)

        recovered = time.monotonic()
        set_faults(fake_eci, {"errors": []})
        wait_for(lambda: _condition(kube, proc.node, ECI_CONDITION).get("status") == "True", 30, "ECI back")
        wait_for(lambda: UNREACHABLE_TAINT["key"] not in _taint_keys(kube, proc.node), 15, "the taint cleared")
        to_clear = time.monotonic() - recovered
        wait_for(lambda: running(kube.pod(namespace, "late")), 60, "the held pod Running after recovery")
        to_late_running = time.monotonic() - recovered
        assert not kube.pod(namespace, "late")["status"].get("reason"), "a stale ECIUnreachable on a Running pod"

        pods = kube.pods(namespace, "app=outage")
        kept = {p["metadata"]["uid"] for p in pods if p["metadata"]["name"].startswith("web-")}
        assert kept == before and all(running(p) for p in pods), "the pods of before the outage were replaced"
        after = {g["ContainerGroupId"] for g in fake_groups(fake_eci, proc.node)}
        assert groups <= after and len(after) == 4, f"groups before {sorted(groups)}, after {sorted(after)}"
        deletes = fake_calls(fake_eci)["by_action"].get("DeleteContainerGroup", {}).get("total", 0) - deletes_before
        assert deletes == 0, f"{deletes} DeleteContainerGroup calls during or after the outage"
        print(
            f"outage {OUTAGE} s: condition after {to_condition:.1f} s, cleared {to_clear:.1f} s after recovery, "
            f"held pod Running {to_late_running:.1f} s after recovery; 0 pods evicted, 0 groups deleted"
        )


def test_a_deleted_node_is_registered_again_within_10_s(daemon, kube, cluster):
    node = kube.node(daemon.node)
    deleted = time.monotonic()  # kubectl returns once the Node is gone: the figure includes its own wait
    cluster.kubectl("delete", "node", daemon.node)

    def back():
        try:
            again = kube.node(daemon.node)
        except Exception:
            return None
        return again if again["metadata"]["uid"] != node["metadata"]["uid"] else None

    again = wait_for(back, 10, "the Node registered again")
    took = time.monotonic() - deleted
    labels = again["metadata"].get("labels") or {}
    # The node lifecycle controller adds beta.kubernetes.io/arch (from kubernetes.io/arch) some time later.
    derived = {"beta.kubernetes.io/arch"}
    lost = {k: v for k, v in (node["metadata"].get("labels") or {}).items() if labels.get(k) != v and k not in derived}
    assert not lost, f"labels not set again: {lost}"
    assert {t["key"] for t in again["spec"].get("taints") or []} >= {"virtual-kubelet.io/provider"}
    assert again["status"]["addresses"] == node["status"]["addresses"]
    wait_for(lambda: kube.ready(daemon.node) == "True", 20, "the Node Ready again")
    print(f"re-registered {took:.1f} s after kubectl delete node")


def test_a_hard_outage_is_noticed_within_seconds_with_the_default_thresholds(daemon, kube, fake_eci, namespace):
    # Connection refused (nothing listens at the endpoint) is no flake: 2 refused pings in a row, not 30 s.
    kube.create(namespace, _pod("kept", daemon.node))
    wait_for(lambda: running(kube.pod(namespace, "kept")), 60, "a pod Running")
    uid = kube.pod(namespace, "kept")["metadata"]["uid"]
    fake_eci.go_offline()
    started = time.monotonic()
    try:
        wait_for(lambda: _condition(kube, daemon.node, ECI_CONDITION).get("status") == "False", 15, "ECI down")
        noticed = time.monotonic() - started
        eci = _condition(kube, daemon.node, ECI_CONDITION)
        assert "connection refused" in eci["message"]
        assert _condition(kube, daemon.node, "Ready").get("status") == "True"
    finally:
        fake_eci.come_online()
    back = time.monotonic()
    wait_for(lambda: _condition(kube, daemon.node, ECI_CONDITION).get("status") == "True", 15, "ECI back")
    wait_for(lambda: UNREACHABLE_TAINT["key"] not in _taint_keys(kube, daemon.node), 15, "the taint cleared")
    cleared = time.monotonic() - back
    pod = kube.pod(namespace, "kept")
    assert pod["metadata"]["uid"] == uid and running(pod)
    print(f"connection refused noticed after {noticed:.1f} s, cleared {cleared:.1f} s after the endpoint came back")
