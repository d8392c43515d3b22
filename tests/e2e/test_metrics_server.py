"""``kubectl top`` and the HorizontalPodAutoscaler for real: metrics-server (built from its Go module,
e2e.metrics_server) scrapes the virtual node's kubelet API (/metrics/resource), whose figures come from the
fake ECI's DescribeMultiContainerGroupMetric through the real SDK; the test steers those figures through the
fake's admin API (``PUT /_fake/groups/{id}/usage``).

Path of one figure: fake ECI -> vk-eci's MetricsCache -> /metrics/resource on 10.250.0.1 (TLS, a serving
certificate of the cluster CA that metrics-server verifies) -> metrics-server -> the aggregator in
kube-apiserver 1.35 (v1beta1.metrics.k8s.io) -> kubectl top / the controller-manager's HPA controller.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vkfixtures import *  # noqa: F403 - pytest fixtures for the daemon test: daemon_factory, fake_eci, kube

from e2e.cluster import Cluster
from e2e.harness import group_of_pod, nginx_deployment, running, steer_usage, wait_for
from e2e.metrics_server import MetricsServer
from e2e.netns import NODE_IP
from e2e.pki import issue_certificate

MIB = 2**20
# metrics-server needs two scrapes (15 s apart) of a sample ECI refreshes every 15 s; a minute and a half
# covers that on a loaded 2-core machine.
FIRST_FIGURE_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def metrics_server(cluster: Cluster) -> Iterator[MetricsServer]:
    """metrics-server registered as v1beta1.metrics.k8s.io for this module; unregistered afterwards, so that
    no other test sees an unavailable aggregated API."""
    ms = MetricsServer(cluster, kubelet_ca=cluster.pki.ca_crt).start()
    yield ms
    ms.stop()
    print(f"---- {ms.log_path} (last 40 lines) ----\n{ms.log_tail(40)}")


@pytest.fixture
def serving_daemon(
    cluster: Cluster, metrics_server: MetricsServer, daemon_factory: Any, kube: Any, tmp_path: Path
) -> Any:
    """A daemon metrics-server scrapes: its kubelet API serves a certificate of the cluster CA for the node
    address, as a kubelet with an approved serving CSR does, so metrics-server verifies it instead of skipping
    TLS checks."""
    crt, key = tmp_path / "kubelet.crt", tmp_path / "kubelet.key"
    issue_certificate(cluster.pki, crt, key, "vk-kubelet-serving", server=True, sans=[NODE_IP])
    proc = daemon_factory(extra_args=[f"--tls-cert-file={crt}", f"--tls-key-file={key}"])
    wait_for(lambda: kube.ready(proc.node) == "True", 60, f"node {proc.node} Ready")
    return proc


def _top(cluster: Cluster, *args: str) -> dict[str, list[str]]:
    """``kubectl top ... --no-headers`` as {name: columns}; empty while metrics-server has no figure yet."""
    out = cluster.kubectl("top", *args, "--no-headers", check=False)
    if out.returncode != 0:
        return {}
    return {cols[0]: cols[1:] for cols in (line.split() for line in out.stdout.splitlines()) if cols}


def _millicores(text: str) -> float:
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def _mebibytes(text: str) -> float:
    assert text.endswith("Mi"), text
    return float(text[:-2])


def _running_pods(kube: Any, namespace: str, app: str, count: int) -> list[dict[str, Any]]:
    pods = [p for p in kube.pods(namespace, f"app={app}") if running(p)]
    return pods if len(pods) >= count else []


def test_kubectl_top_pod_and_node_show_what_eci_reports(
    cluster: Cluster, serving_daemon: Any, kube: Any, fake_eci: Any, namespace: str
) -> None:
    daemon = serving_daemon
    kube.create(namespace, nginx_deployment("web", daemon.node, 2, requests={"cpu": "200m", "memory": "256Mi"}))
    pods = wait_for(lambda: _running_pods(kube, namespace, "web", 2), 90, "2 web pods Running")
    started = time.monotonic()
    steered, other = sorted(p["metadata"]["name"] for p in pods)
    steer_usage(fake_eci, group_of_pod(fake_eci, daemon.node, steered)["ContainerGroupId"], cpu=0.3, memory=200 * MIB)

    def both_listed() -> dict[str, list[str]] | None:
        top = _top(cluster, "pod", "-n", namespace)
        return top if {steered, other} <= set(top) else None

    listed = wait_for(
        both_listed,
        FIRST_FIGURE_TIMEOUT_S,
        f"`kubectl top pod -n {namespace}` to list {steered} and {other}",
        interval=2,
    )
    first_figure_s = time.monotonic() - started

    # The first rate may span the moment of steering; within one more scrape it is exactly the steered one.
    def steered_figure() -> list[str] | None:
        cols = _top(cluster, "pod", "-n", namespace).get(steered)
        return cols if cols and abs(_millicores(cols[0]) - 300) <= 3 and _mebibytes(cols[1]) == 200 else None

    cols = wait_for(steered_figure, 60, f"{steered} at 300m CPU and 200Mi (steered)", interval=2)
    exact_s = time.monotonic() - started
    assert 0 < _millicores(listed[other][0]) < 300 and _mebibytes(listed[other][1]) > 0, listed

    node = wait_for(
        lambda: _top(cluster, "node", daemon.node).get(daemon.node),
        FIRST_FIGURE_TIMEOUT_S,
        f"`kubectl top node {daemon.node}`",
        interval=2,
    )
    # The node is the sum of its pods (ECI has no host to measure): 300m steered plus 5-30m synthetic (2-12 %
    # of the other pod's 0.25 ECI cores), in every window, not only on average (three scrapes 15 s apart).
    readings = [node]
    for _ in range(2):
        time.sleep(15)
        readings.append(_top(cluster, "node", daemon.node)[daemon.node])
    cpus = [_millicores(r[0]) for r in readings]
    assert all(290 <= c <= 345 for c in cpus), readings
    assert all(_mebibytes(r[2]) >= 200 for r in readings), readings
    print(
        f"kubectl top: first figure {first_figure_s:.0f}s after the pods ran, steered figure exact after "
        f"{exact_s:.0f}s; pod {steered}: {cols}, {other}: {listed[other]}; node CPU over 3 scrapes: {cpus}"
    )


def test_hpa_scales_a_deployment_up_on_the_cpu_eci_reports(
    serving_daemon: Any, kube: Any, fake_eci: Any, namespace: str
) -> None:
    daemon = serving_daemon
    kube.create(namespace, nginx_deployment("busy", daemon.node, 1, requests={"cpu": "200m", "memory": "256Mi"}))
    pod = wait_for(lambda: _running_pods(kube, namespace, "busy", 1), 90, "the busy pod Running")[0]
    gid = group_of_pod(fake_eci, daemon.node, pod["metadata"]["name"])["ContainerGroupId"]
    steer_usage(fake_eci, gid, cpu=0.05)  # 25 % of the 200m request: under the 50 % target
    kube.create(
        namespace,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "busy"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                    }
                ],
            },
        },
    )
    hpa_path = f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/busy"

    def utilization() -> int | None:
        for metric in (kube.get(hpa_path).get("status") or {}).get("currentMetrics") or []:
            value = ((metric.get("resource") or {}).get("current") or {}).get("averageUtilization")
            if value is not None:
                return int(value)
        return None

    started = time.monotonic()
    low = wait_for(lambda: (u := utilization()) is not None and u <= 30 and u, 180, "the HPA to read ~25 % CPU", 2)
    seen_s = time.monotonic() - started
    assert kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/busy")["spec"]["replicas"] == 1

    steer_usage(fake_eci, gid, cpu=0.4)  # 200 % of the request: ceil(1 x 200 / 50) = 4, capped at 3
    steered = time.monotonic()
    wait_for(
        lambda: kube.get(hpa_path).get("status", {}).get("desiredReplicas") == 3,
        # Measured 14-15 s on a quiet machine, 44 s at load average 14: one ECI sample (15 s grid), the
        # daemon's 15 s cache, a 15 s scrape and a 5 s HPA sync in the worst case, then the load.
        180,
        "the HPA to want 3 replicas",
        interval=1,
    )
    desired_s = time.monotonic() - steered
    wait_for(lambda: _running_pods(kube, namespace, "busy", 3), 90, "3 busy pods Running", interval=1)
    running_s = time.monotonic() - steered
    high = utilization()
    print(
        f"HPA: read {low}% {seen_s:.0f}s after it was made; after steering to 200%: desiredReplicas 3 in "
        f"{desired_s:.0f}s, 3 pods Running in {running_s:.0f}s (utilization then {high}%)"
    )
