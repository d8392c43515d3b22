"""ECI metrics to the Summary API and to /metrics/resource."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from vkeci.kubelet import stats


def record(ts: str, cpu_ns: int, ws: int, containers: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {
        "Timestamp": ts,
        "CPU": {"UsageCoreNanoSeconds": cpu_ns, "UsageNanoCores": 1000},
        "Memory": {"WorkingSet": ws, "UsageBytes": ws + 10, "Rss": ws - 10},
        "Containers": [
            {"Name": n, "CPU": {"UsageCoreNanoSeconds": c, "UsageNanoCores": 500}, "Memory": {"WorkingSet": w}}
            for n, c, w in containers
        ],
    }


def pod(name: str, uid: str = "", phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}"},
        "status": {
            "phase": phase,
            "startTime": "2024-01-01T00:00:00Z",
            "containerStatuses": [{"name": "main", "state": {"running": {"startedAt": "2024-01-01T00:00:05Z"}}}],
        },
    }


def test_latest_record_per_group() -> None:
    body = {
        "MonitorDatas": [
            {
                "ContainerGroupId": "g1",
                "Records": [record("2024-01-01T00:00:30Z", 2, 2, []), record("2024-01-01T00:00:15Z", 1, 1, [])],
            },
            {"ContainerGroupId": "g2", "Records": []},
        ]
    }
    latest = stats.latest_records(body)
    assert list(latest) == ["g1"]
    assert latest["g1"]["CPU"]["UsageCoreNanoSeconds"] == 2


def test_summary_and_resource_metrics() -> None:
    metrics = [
        stats.pod_metrics(
            pod("web"), record("2024-01-01T00:01:00Z", 3_000_000_000, 2048, [("main", 3_000_000_000, 2048)])
        )
    ]
    doc = stats.summary("vk", "2024-01-01T00:00:00Z", metrics, 5_000_000_000, "2024-01-01T00:01:01Z")
    assert doc["node"]["nodeName"] == "vk"
    assert doc["node"]["cpu"]["usageCoreNanoSeconds"] == 5_000_000_000
    assert doc["node"]["memory"]["workingSetBytes"] == 2048
    entry = doc["pods"][0]
    assert entry["podRef"] == {"name": "web", "namespace": "ns", "uid": "uid-web"}
    assert entry["containers"][0]["name"] == "main"
    assert entry["containers"][0]["startTime"] == "2024-01-01T00:00:05Z"
    assert entry["memory"]["rssBytes"] == 2038

    text = stats.resource_metrics(metrics, 5_000_000_000, 1704067261.0).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = (("container", "main"), ("namespace", "ns"), ("pod", "web"))
    assert samples[("node_cpu_usage_seconds_total", ())].value == 5.0
    assert samples[("node_memory_working_set_bytes", ())].value == 2048
    assert samples[("container_cpu_usage_seconds_total", labels)].value == 3.0
    assert samples[("container_memory_working_set_bytes", labels)].value == 2048
    assert samples[("container_start_time_seconds", labels)].value == 1704067205.0
    assert samples[("container_cpu_usage_seconds_total", labels)].timestamp == 1704067260.0
    assert samples[("pod_cpu_usage_seconds_total", (("namespace", "ns"), ("pod", "web")))].value == 3.0
    # The node's figures are as of the newest ECI sample, so a rate over two scrapes matches its pods'.
    assert samples[("node_cpu_usage_seconds_total", ())].timestamp == 1704067260.0
    assert samples[("node_memory_working_set_bytes", ())].timestamp == 1704067260.0
    bare = stats.resource_metrics([], 0, 1704067261.0).decode()
    assert "node_cpu_usage_seconds_total 0.0 1704067261000" in bare


def test_container_sum_when_group_totals_missing() -> None:
    rec = record("2024-01-01T00:01:00Z", 0, 0, [("a", 10, 1), ("b", 20, 2)])
    rec["CPU"], rec["Memory"] = None, None
    metrics = stats.pod_metrics(pod("x"), rec)
    assert metrics.usage.cpu_core_ns == 30
    assert metrics.usage.working_set == 3


@given(st.lists(st.dictionaries(st.sampled_from("abcd"), st.integers(0, 10**12), max_size=4), max_size=8))
def test_node_cpu_counter_never_decreases(rounds: list[dict[str, int]]) -> None:
    counter = stats.NodeCpuCounter()
    previous = 0
    cumulative: dict[str, int] = {}
    for snapshot in rounds:
        # each pod's own counter only grows while it lives
        for key, value in snapshot.items():
            cumulative[key] = max(cumulative.get(key, 0), value)
        pods = [stats.PodMetrics("ns", k, k, None, None, stats.Usage(cpu_core_ns=cumulative[k])) for k in snapshot]
        total = counter.update(pods)
        assert total >= previous
        previous = total


class FakeLookup:
    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = {p["metadata"]["name"]: p for p in pods}

    def get(self, namespace: str, name: str) -> tuple[dict[str, Any], str | None] | None:
        found = self.pods.get(name)
        return (found, f"eci-{name}") if found else None

    def list(self) -> list[dict[str, Any]]:
        return list(self.pods.values())


class FakeMetrics:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def describe_multi_container_group_metric(self, ids: list[str]) -> dict[str, Any]:
        self.calls.append(ids)
        return {
            "MonitorDatas": [
                {
                    "ContainerGroupId": i,
                    "Records": [record("2024-01-01T00:00:00Z", 1_000_000_000, 100, [("main", 1_000_000_000, 100)])],
                }
                for i in ids
            ]
        }


def test_cache_batches_by_twenty_and_skips_non_running() -> None:
    lookup = FakeLookup([pod(f"p{i:02d}") for i in range(25)] + [pod("pending", phase="Pending")])
    eci = FakeMetrics()
    now = [0.0]
    cache = stats.MetricsCache(lookup, eci, ttl=10, clock=lambda: now[0])  # type: ignore[arg-type]
    pods, node_cpu = cache.get()
    assert [len(c) for c in eci.calls] == [20, 5]
    assert len(pods) == 25
    assert node_cpu == 25 * 1_000_000_000
    cache.get()
    assert len(eci.calls) == 2  # cached
    now[0] = 11
    cache.get()
    assert len(eci.calls) == 4


def test_a_pod_started_after_a_scrape_is_listed_at_once_with_no_usage_until_eci_samples_it() -> None:
    """Issue 12: the pod list was cached with the ECI numbers, so a new pod was missing for up to ttl."""
    lookup = FakeLookup([pod("old")])
    eci = FakeMetrics()
    now = [0.0]
    cache = stats.MetricsCache(lookup, eci, ttl=15, clock=lambda: now[0])  # type: ignore[arg-type]
    first, node_cpu = cache.get()
    assert [p.name for p in first] == ["old"] and node_cpu == 1_000_000_000
    lookup.pods["new"] = pod("new")
    now[0] = 1
    pods, node_cpu = cache.get()
    assert len(eci.calls) == 1  # the ECI numbers are still cached
    by_name = {p.name: p for p in pods}
    assert set(by_name) == {"old", "new"}
    assert by_name["new"].usage == stats.Usage() and by_name["new"].containers == ()
    assert node_cpu == 1_000_000_000
    del lookup.pods["old"]
    assert [p.name for p in cache.get()[0]] == ["new"]  # a pod that ended leaves at once too
    now[0] = 16
    pods, node_cpu = cache.get()
    assert {p.name: p.usage.cpu_core_ns for p in pods} == {"new": 1_000_000_000}
    assert node_cpu == 2_000_000_000
