"""The vkeci_* series (vkeci/metrics.py): counted where things happen, read at scrape time, served as text
that Prometheus' own parser reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import responses
from alibabacloud_tea_openapi.exceptions import ClientException
from prometheus_client.parser import text_string_to_metric_families

from tests.controllers.test_pods import CONFIG, StubECI, StubKube, StubTranslator, load
from vkeci.clients.eci import EciClient, EciError
from vkeci.clients.kube import Credentials, KubeClient, KubeError
from vkeci.clients.ratelimit import RateLimitTimeout, TokenBucket
from vkeci.config import PodSettings
from vkeci.controllers.health import HealthServer, Liveness
from vkeci.controllers.pods import PodController
from vkeci.metrics import Metrics

HOST = "https://api.test:6443"


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed by prometheus_client's own parser: (name, labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


class State:
    """A DaemonState with fixed answers."""

    def __init__(self) -> None:
        self.renewed: float | None = None

    def pods_by_phase(self) -> Mapping[str, int]:
        return {"Running": 3, "Pending": 1}

    def groups_by_status(self) -> Mapping[str, int]:
        return {"Running": 3, "Scheduling": 1}

    def queue_depth(self) -> int:
        return 2

    def status_backlog(self) -> int:
        return 5

    def lease_renewed_ago(self) -> float | None:
        return self.renewed

    def eci_healthy(self) -> bool:
        return True


def test_the_exposition_parses_and_holds_every_family():
    metrics = Metrics()
    state = State()
    metrics.watch(state)
    names = {f.name for f in text_string_to_metric_families(metrics.exposition().decode())}
    # Families (the parser strips _total from counters).
    assert {
        "vkeci_eci_calls",
        "vkeci_eci_call_duration_seconds",
        "vkeci_eci_rate_limit_wait_seconds",
        "vkeci_kube_requests",
        "vkeci_kube_request_duration_seconds",
        "vkeci_kube_rate_limit_wait_seconds",
        "vkeci_workqueue_retries",
        "vkeci_pod_create_latency_seconds",
        "vkeci_pod_status_lag_seconds",
        "vkeci_events",
        "vkeci_build_info",
        "vkeci_pods",
        "vkeci_container_groups",
        "vkeci_workqueue_depth",
        "vkeci_status_backlog",
        "vkeci_eci_healthy",
        "process_cpu_seconds",
    } <= names
    assert "vkeci_lease_renew_age_seconds" not in names  # no renewal yet: no made-up age
    state.renewed = 4.5
    assert value(metrics, "vkeci_lease_renew_age_seconds") == 4.5
    assert value(metrics, "vkeci_pods", phase="Running") == 3
    assert value(metrics, "vkeci_container_groups", status="Scheduling") == 1
    assert value(metrics, "vkeci_status_backlog") == 5 and value(metrics, "vkeci_workqueue_depth") == 2


def test_two_daemons_in_one_process_keep_their_own_counts():
    one, two = Metrics(), Metrics()
    one.eci_call("CreateContainerGroup", "ok", 0.0, 0.1)
    assert value(one, "vkeci_eci_calls_total", action="CreateContainerGroup", outcome="ok") == 1
    assert value(two, "vkeci_eci_calls_total", action="CreateContainerGroup", outcome="ok") == 0


class Sdk:
    """SDK calls answering ok, throttled, refused and not found."""

    def describe_regions(self, req):
        return SimpleNamespace(body=None)

    def call_api(self, params, request, runtime):
        if params.action == "CreateContainerGroup":
            raise ClientException(code="Throttling.User", message="slow down", status_code=400)
        assert params.action == "DeleteContainerGroup"
        raise ClientException(code="InvalidContainerGroup.NotFound", message="gone", status_code=404)

    def describe_container_log(self, req):
        raise ClientException(code="InvalidParameter", message="bad", status_code=400)

    def exec_container_command(self, req):
        raise ClientException(code="InternalError", message="oops", status_code=500)


def test_every_eci_call_counts_by_outcome_with_its_latency():
    eci = EciClient(Sdk(), "cn-hangzhou")
    eci.ping()
    for call in (
        lambda: eci.create({"ContainerGroupName": "a"}),
        lambda: eci.describe_container_log({"ContainerGroupId": "g", "ContainerName": "c"}),
        lambda: eci.exec_container_command({"ContainerGroupId": "g", "ContainerName": "c", "Command": ["ls"]}),
    ):
        with pytest.raises(EciError):
            call()
    eci.delete("eci-1")  # already gone: fine for the caller, "not_found" for the operator
    m = eci.metrics
    assert value(m, "vkeci_eci_calls_total", action="DescribeRegions", outcome="ok") == 1
    assert value(m, "vkeci_eci_calls_total", action="CreateContainerGroup", outcome="throttled") == 1
    assert value(m, "vkeci_eci_calls_total", action="DeleteContainerGroup", outcome="not_found") == 1
    assert value(m, "vkeci_eci_calls_total", action="DescribeContainerLog", outcome="client_error") == 1
    assert value(m, "vkeci_eci_calls_total", action="ExecContainerCommand", outcome="server_error") == 1
    assert value(m, "vkeci_eci_call_duration_seconds_count", action="DescribeRegions") == 1
    # The --stats-file view is read from the same counter: one fact, counted once.
    assert sum(eci.calls.values()) == 5


def test_a_call_the_local_rate_limit_drops_is_counted_as_dropped_not_sent():
    class Exhausted:
        def acquire(self, action):
            raise RateLimitTimeout(action)

    eci = EciClient(Sdk(), "cn-hangzhou", Exhausted())  # type: ignore[arg-type]
    with pytest.raises(EciError):
        eci.ping()
    assert value(eci.metrics, "vkeci_eci_calls_total", action="DescribeRegions", outcome="dropped") == 1
    assert value(eci.metrics, "vkeci_eci_call_duration_seconds_count", action="DescribeRegions") == 0
    assert eci.calls == {}


@responses.activate
def test_kubernetes_requests_count_by_verb_resource_and_code():
    responses.get(HOST + "/api/v1/nodes/n", json={})
    responses.patch(HOST + "/api/v1/namespaces/ns/pods/p/status", status=404, json={"reason": "NotFound"})
    kube = KubeClient(Credentials(host=HOST, verify=False))
    heartbeat = kube.with_priority(True)
    heartbeat.get("/api/v1/nodes/n")
    with pytest.raises(KubeError):
        kube.patch("/api/v1/namespaces/ns/pods/p/status", {})
    m = kube.metrics
    assert heartbeat.metrics is m  # one count for every client of the daemon
    assert value(m, "vkeci_kube_requests_total", verb="GET", resource="nodes", code="200") == 1
    assert value(m, "vkeci_kube_requests_total", verb="PATCH", resource="pods/status", code="404") == 1
    assert value(m, "vkeci_kube_request_duration_seconds_count", verb="GET", resource="nodes") == 1
    assert kube.counts == {"GET nodes": 1, "PATCH pods/status": 1}


def test_kubernetes_requests_the_rate_limit_drops_and_unanswered_ones():
    class Exhausted(TokenBucket):
        def acquire(self, *, priority: bool = False, timeout: float | None = None) -> None:
            raise RateLimitTimeout("no token")

    kube = KubeClient(Credentials(host="http://127.0.0.1:1"), limiter=Exhausted(1, 1))
    with pytest.raises(KubeError):
        kube.get("/version")
    assert value(kube.metrics, "vkeci_kube_requests_total", verb="GET", resource="version", code="dropped") == 1
    assert value(kube.metrics, "vkeci_kube_rate_limit_wait_seconds_count", priority="normal") == 1
    unlimited = KubeClient(Credentials(host="http://127.0.0.1:1"), timeout=1, connect_timeout=0.5)
    with pytest.raises(KubeError):
        unlimited.get("/version")
    assert value(unlimited.metrics, "vkeci_kube_requests_total", verb="GET", resource="version", code="none") == 1


def test_the_pod_controller_observes_create_latency_status_lag_retries_and_events():
    kube, eci = StubKube(), StubECI()
    metrics = Metrics()
    ctl = PodController(kube, eci, CONFIG, StubTranslator(), PodSettings(lost_grace=0), metrics=metrics)  # type: ignore[arg-type]
    ctl.synced.set()
    kube.add("web")
    kube.add("needs", needs=True)  # waits for a ConfigMap: a retry
    load(ctl, kube)
    ctl.sync("ns/web")
    assert value(metrics, "vkeci_pod_create_latency_seconds_count") == 1
    ctl.sync("ns/web")
    assert value(metrics, "vkeci_pod_create_latency_seconds_count") == 1  # once per pod
    # The worker loop counts the retry of the pod that waits for its ConfigMap.
    ctl.queue.add("ns/needs")
    stop = threading.Event()
    worker = threading.Thread(target=ctl.worker_loop, args=(stop,))
    worker.start()
    deadline = time.monotonic() + 5
    while (
        not value(metrics, "vkeci_workqueue_retries_total", error="missing_reference") and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    stop.set()
    worker.join()
    assert value(metrics, "vkeci_workqueue_retries_total", error="missing_reference") >= 1
    assert value(metrics, "vkeci_events_total", source="daemon", outcome="posted") >= 1  # its FailedMount Warning


def test_the_status_lag_is_measured_from_ecis_start_time():
    from vkeci.controllers.statussync import StatusWriter

    class Kube:
        def patch(self, path, body, content_type=""):
            return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "status": body["status"]}

    class Cache:
        def replace(self, pod):
            pass

    metrics = Metrics()
    writer = StatusWriter(Kube(), Cache(), metrics)  # type: ignore[arg-type]
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "status": {"phase": "Pending"}}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3))
    running = {"phase": "Running", "containerStatuses": [{"state": {"running": {"startedAt": started}}}]}
    assert writer.write(pod, running)
    assert value(metrics, "vkeci_pod_status_lag_seconds_count") == 1
    assert 2.0 <= value(metrics, "vkeci_pod_status_lag_seconds_sum") < 10.0
    assert value(metrics, "vkeci_pod_status_lag_seconds_bucket", le="2.0") == 0


def test_the_health_port_serves_metrics():
    metrics = Metrics()
    server = HealthServer("127.0.0.1", 0, Liveness(30.0), lambda: [], metrics.exposition)
    server.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
        assert "vkeci_build_info" in answer.text
    finally:
        server.stop()


def test_the_readme_lists_every_series():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    metrics = Metrics()
    state = State()
    state.renewed = 1.0  # every family present
    metrics.watch(state)
    families = [f.name for f in text_string_to_metric_families(metrics.exposition().decode())]
    vkeci = [name for name in families if name.startswith("vkeci_") and not name.endswith("_created")]
    missing = [name for name in vkeci if f"`{name}_total`" not in readme and f"`{name}`" not in readme]
    assert len(vkeci) >= 17 and missing == [], f"README, Metrics and alerts: add {missing}"
