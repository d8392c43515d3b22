"""The daemon's ``/metrics`` while it works: the real control plane, `vkeci run`, the fake ECI over the real SDK.

Scraped on the health port (plain HTTP on loopback) and on the kubelet port through the API server's node
proxy (authenticated, as Prometheus' kubelet job reads it); the series move as pods are created, run and
have their logs read, and the exposition parses with prometheus_client's parser.
"""

from __future__ import annotations

from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from vkfixtures import *  # noqa: F403 - pytest fixtures: daemon, daemon_factory, fake_eci, kube

from e2e.cluster import Cluster
from e2e.harness import fake_calls, pod_manifest, running, set_faults, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
PODS = 3


def parse(text: str) -> Samples:
    """(name, sorted labels) -> value, through prometheus_client's own parser (it raises on bad text)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(daemon: Any) -> Samples:
    answer = requests.get(f"http://127.0.0.1:{daemon.health_port}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def test_metrics_move_while_the_daemon_works(daemon: Any, kube: Any, cluster: Cluster, namespace: str) -> None:
    before = scrape(daemon)
    assert get(before, "vkeci_eci_healthy") == 1
    assert total(before, "vkeci_build_info") == 1
    create = {"action": "CreateContainerGroup", "outcome": "ok"}
    status_writes = {"verb": "PATCH", "resource": "pods/status", "code": "200"}

    names = [f"m{i}" for i in range(PODS)]
    container = [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]
    for name in names:
        kube.create(namespace, pod_manifest(name, daemon.node, containers=container))

    def all_running() -> bool:
        return all(running(kube.pod(namespace, n)) for n in names)

    wait_for(all_running, 90, f"{PODS} pods Running on the fake ECI")
    # `kubectl logs` goes through the kubelet API, whose ECI calls count too.
    cluster.kubectl("-n", namespace, "logs", names[0], check=False)

    def settled() -> Samples:
        now = scrape(daemon)
        moved = (
            get(now, "vkeci_pods", phase="Running") == PODS
            and get(now, "vkeci_container_groups", status="Running") == PODS
            and total(now, "vkeci_eci_calls_total", action="DescribeContainerLog")
            > total(before, "vkeci_eci_calls_total", action="DescribeContainerLog")
        )
        return now if moved else {}

    after = wait_for(settled, 30, "the pod and group gauges to show the running pods")
    assert get(after, "vkeci_eci_calls_total", **create) - get(before, "vkeci_eci_calls_total", **create) == PODS
    assert get(after, "vkeci_eci_call_duration_seconds_count", action="CreateContainerGroup") >= PODS
    assert (
        get(after, "vkeci_kube_requests_total", **status_writes)
        - get(before, "vkeci_kube_requests_total", **status_writes)
        >= PODS
    )
    assert total(after, "vkeci_kube_requests_total", resource="leases") > 0  # the heartbeat's client
    created = "vkeci_pod_create_latency_seconds_count"
    assert get(after, created) - get(before, created) == PODS
    lag = "vkeci_pod_status_lag_seconds_count"
    assert get(after, lag) - get(before, lag) == PODS
    # A lag of more than a minute on an idle node with a 0.5 s status interval would be a bug, not a slow machine.
    assert get(after, "vkeci_pod_status_lag_seconds_bucket", le="60.0") == get(after, lag)
    assert 0 <= get(after, "vkeci_lease_renew_age_seconds") < 30
    assert get(after, "vkeci_eci_healthy") == 1
    # No pod name or group id in any label.
    labels = {value for (_, lab) in after for _, value in lab}
    assert not labels & set(names)
    assert not [v for v in labels if v.startswith("eci-")]


def test_the_kubelet_port_serves_the_same_series_behind_its_authentication(daemon: Any, cluster: Cluster) -> None:
    # Through the API server's node proxy, as Prometheus' kubelet job scrapes: the daemon authenticates the
    # API server's kubelet client certificate. /metrics/resource is another route, and stays.
    base = f"/api/v1/nodes/{daemon.node}/proxy"
    own = parse(cluster.kubectl("get", "--raw", f"{base}/metrics").stdout)
    assert total(own, "vkeci_build_info") == 1 and total(own, "vkeci_kube_requests_total") > 0
    resource = parse(cluster.kubectl("get", "--raw", f"{base}/metrics/resource").stdout)
    assert ("node_cpu_usage_seconds_total", ()) in resource
    assert not [name for name, _ in resource if name.startswith("vkeci_")]


def test_throttling_shows_and_every_eci_call_is_counted(daemon: Any, kube: Any, fake_eci: Any, namespace: str) -> None:
    # ECI throttles the first two creates: the operator sees them as "throttled" and as retries, the pod still
    # runs, and the daemon's count of every action agrees with what the fake ECI received.
    set_faults(fake_eci, {"errors": [{"action": "CreateContainerGroup", "code": "Throttling.User", "times": 2}]})
    container = [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]
    kube.create(namespace, pod_manifest("slow", daemon.node, containers=container))
    wait_for(lambda: running(kube.pod(namespace, "slow")), 90, "the pod to run after two throttled creates")
    now = scrape(daemon)
    assert get(now, "vkeci_eci_calls_total", action="CreateContainerGroup", outcome="throttled") == 2
    assert get(now, "vkeci_eci_calls_total", action="CreateContainerGroup", outcome="ok") == 1
    assert get(now, "vkeci_workqueue_retries_total", error="eci") >= 2

    def agree() -> dict[str, float]:
        # The fake counts a call when it arrives, the daemon when the answer is back: poll until a moment
        # with no call in flight.
        received = {a: float(v["total"]) for a, v in fake_calls(fake_eci)["by_action"].items()}
        sent = scrape(daemon)
        counted = {a: total(sent, "vkeci_eci_calls_total", action=a) for a in received}
        return received if counted == received else {}

    received = wait_for(agree, 30, "the daemon's ECI counts to equal the calls the fake received")
    assert received["CreateContainerGroup"] == 3
