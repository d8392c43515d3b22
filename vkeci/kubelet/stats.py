"""``/stats/summary`` (stats/v1alpha1 JSON) and ``/metrics/resource`` (Prometheus text) from
ECI's DescribeMultiContainerGroupMetric.

Everything here but :class:`MetricsCache` is pure: ECI records and pod dicts in, documents out.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from vkeci.kubelet.backend import EciApi, EciError, PodDict, PodLookup

ECI_BATCH = 20  # DescribeMultiContainerGroupMetric takes at most 20 ids per call


@dataclass(frozen=True)
class Usage:
    """CPU and memory of one container or pod at one instant."""

    cpu_core_ns: int = 0  # cumulative CPU time, nanoseconds
    cpu_nano_cores: int = 0  # current rate
    working_set: int = 0
    usage: int = 0
    rss: int = 0
    available: int = 0


@dataclass(frozen=True)
class ContainerMetrics:
    """One container's usage and start time."""

    name: str
    start_time: str | None
    usage: Usage


@dataclass(frozen=True)
class PodMetrics:
    """One pod's usage, with the time ECI sampled it."""

    namespace: str
    name: str
    uid: str
    start_time: str | None
    timestamp: str | None  # RFC 3339 from ECI's record
    usage: Usage
    containers: tuple[ContainerMetrics, ...] = ()


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _usage(cpu: dict[str, Any] | None, memory: dict[str, Any] | None) -> Usage:
    cpu = cpu or {}
    memory = memory or {}
    return Usage(
        cpu_core_ns=_int(cpu.get("UsageCoreNanoSeconds")),
        cpu_nano_cores=_int(cpu.get("UsageNanoCores")),
        working_set=_int(memory.get("WorkingSet")),
        usage=_int(memory.get("UsageBytes")),
        rss=_int(memory.get("Rss")),
        available=_int(memory.get("AvailableBytes")),
    )


def latest_records(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The newest record per container group id from a DescribeMultiContainerGroupMetric body."""
    latest: dict[str, dict[str, Any]] = {}
    for data in body.get("MonitorDatas") or []:
        records = data.get("Records") or []
        if records:
            latest[str(data.get("ContainerGroupId"))] = max(records, key=lambda r: str(r.get("Timestamp") or ""))
    return latest


def _container_start(pod: PodDict, name: str) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            running = (status.get("state") or {}).get("running") or {}
            return running.get("startedAt")
    return None


def pod_metrics(pod: PodDict, record: dict[str, Any]) -> PodMetrics:
    """Join one pod with its group's newest ECI metric record."""
    meta = pod.get("metadata") or {}
    containers = tuple(
        ContainerMetrics(
            name=str(item.get("Name")),
            start_time=_container_start(pod, str(item.get("Name"))),
            usage=_usage(item.get("CPU"), item.get("Memory")),
        )
        for item in record.get("Containers") or []
    )
    group_usage = _usage(record.get("CPU"), record.get("Memory"))
    if not group_usage.cpu_core_ns and containers:
        group_usage = Usage(
            cpu_core_ns=sum(c.usage.cpu_core_ns for c in containers),
            cpu_nano_cores=sum(c.usage.cpu_nano_cores for c in containers),
            working_set=sum(c.usage.working_set for c in containers),
            usage=sum(c.usage.usage for c in containers),
            rss=sum(c.usage.rss for c in containers),
        )
    return PodMetrics(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name")),
        uid=str(meta.get("uid") or ""),
        start_time=(pod.get("status") or {}).get("startTime"),
        timestamp=record.get("Timestamp"),
        usage=group_usage,
        containers=containers,
    )


@dataclass
class NodeCpuCounter:
    """A monotonic node CPU counter summed from pods that come and go.

    A plain sum would drop when a pod ends, and metrics-server reads a drop as a counter
    reset; adding only each pod's growth keeps the node series monotonic.
    """

    total_ns: int = 0
    last: dict[str, int] = field(default_factory=dict)

    def update(self, pods: Iterable[PodMetrics]) -> int:
        """Fold in the pods' current cumulative CPU and return the node total (ns)."""
        current = {}
        for pod in pods:
            key = pod.uid or f"{pod.namespace}/{pod.name}"
            current[key] = pod.usage.cpu_core_ns
            self.total_ns += max(0, pod.usage.cpu_core_ns - self.last.get(key, 0))
        self.last = current
        return self.total_ns


def _cpu(usage: Usage, time_: str) -> dict[str, Any]:
    return {"time": time_, "usageNanoCores": usage.cpu_nano_cores, "usageCoreNanoSeconds": usage.cpu_core_ns}


def _memory(usage: Usage, time_: str) -> dict[str, Any]:
    memory: dict[str, Any] = {
        "time": time_,
        "usageBytes": usage.usage,
        "workingSetBytes": usage.working_set,
        "rssBytes": usage.rss,
        "pageFaults": 0,
        "majorPageFaults": 0,
    }
    if usage.available:
        memory["availableBytes"] = usage.available
    return memory


def summary(node_name: str, node_start: str, pods: list[PodMetrics], node_cpu_ns: int, now: str) -> dict[str, Any]:
    """A stats/v1alpha1 Summary: the node is the sum of its pods (ECI has no host to measure)."""
    node_usage = Usage(
        cpu_core_ns=node_cpu_ns,
        cpu_nano_cores=sum(p.usage.cpu_nano_cores for p in pods),
        working_set=sum(p.usage.working_set for p in pods),
        usage=sum(p.usage.usage for p in pods),
        rss=sum(p.usage.rss for p in pods),
    )
    return {
        "node": {
            "nodeName": node_name,
            "startTime": node_start,
            "cpu": _cpu(node_usage, now),
            "memory": _memory(node_usage, now),
            "systemContainers": [],
        },
        "pods": [
            {
                "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                "startTime": p.start_time or node_start,
                "containers": [
                    {
                        "name": c.name,
                        "startTime": c.start_time or p.start_time or node_start,
                        "cpu": _cpu(c.usage, p.timestamp or now),
                        "memory": _memory(c.usage, p.timestamp or now),
                    }
                    for c in p.containers
                ],
                "cpu": _cpu(p.usage, p.timestamp or now),
                "memory": _memory(p.usage, p.timestamp or now),
            }
            for p in pods
        ],
    }


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _Snapshot:
    """A prometheus_client collector over one fixed set of metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def resource_metrics(pods: list[PodMetrics], node_cpu_ns: int, now: float) -> bytes:
    """The ``/metrics/resource`` exposition, with the series metrics-server reads.

    Values are in seconds and bytes; every sample carries the time ECI sampled it, because
    metrics-server computes CPU rates from consecutive timestamps.
    """
    node_cpu = CounterMetricFamily("node_cpu_usage_seconds", "Cumulative cpu time consumed by the node in core-seconds")
    node_mem = GaugeMetricFamily("node_memory_working_set_bytes", "Current working set of the node in bytes")
    pod_cpu = CounterMetricFamily(
        "pod_cpu_usage_seconds", "Cumulative cpu time consumed by the pod in core-seconds", labels=["namespace", "pod"]
    )
    pod_mem = GaugeMetricFamily(
        "pod_memory_working_set_bytes", "Current working set of the pod in bytes", labels=["namespace", "pod"]
    )
    labels = ["container", "namespace", "pod"]
    c_cpu = CounterMetricFamily(
        "container_cpu_usage_seconds", "Cumulative cpu time consumed by the container in core-seconds", labels=labels
    )
    c_mem = GaugeMetricFamily(
        "container_memory_working_set_bytes", "Current working set of the container in bytes", labels=labels
    )
    c_start = GaugeMetricFamily(
        "container_start_time_seconds", "Start time of the container since unix epoch in seconds", labels=labels
    )
    sampled: list[float] = []
    for p in pods:
        stamp = _epoch(p.timestamp) or now
        if p.timestamp:
            sampled.append(stamp)
        pod_cpu.add_metric([p.namespace, p.name], p.usage.cpu_core_ns / 1e9, timestamp=stamp)
        pod_mem.add_metric([p.namespace, p.name], p.usage.working_set, timestamp=stamp)
        for c in p.containers:
            values = [c.name, p.namespace, p.name]
            c_cpu.add_metric(values, c.usage.cpu_core_ns / 1e9, timestamp=stamp)
            c_mem.add_metric(values, c.usage.working_set, timestamp=stamp)
            started = _epoch(c.start_time) or _epoch(p.start_time)
            if started:
                c_start.add_metric(values, started, timestamp=stamp)
    # The node counter grows only when ECI has a new sample of its pods (every 15 s, not at each scrape), so
    # it is stamped with the newest sample's time: stamped with the scrape time, metrics-server's rate
    # (counter delta / time delta) swung between 0 and twice the pods' sum (639m for pods of 300m + ~20m).
    node_at = max(sampled) if sampled else now
    node_cpu.add_metric([], node_cpu_ns / 1e9, timestamp=node_at)
    node_mem.add_metric([], sum(p.usage.working_set for p in pods), timestamp=node_at)
    scrape_error = GaugeMetricFamily(
        "scrape_error", "1 if there was an error while getting container metrics, 0 otherwise"
    )
    scrape_error.add_metric([], 0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([node_cpu, node_mem, pod_cpu, pod_mem, c_cpu, c_mem, c_start, scrape_error]))
    return generate_latest(registry)


@dataclass
class _Cached:
    at: float
    records: dict[str, dict[str, Any]]  # group id -> its newest ECI metric record


class MetricsCache:
    """Lists every running pod with a container group at each scrape, and joins it with the ECI
    metrics, which are fetched in batches of 20 at most once per ``ttl`` seconds however often the
    node is scraped. Only the ECI numbers are cached: a pod that started since the last fetch is
    listed at once with zero usage and no containers until ECI has a sample of it (issue 12: it
    was missing for up to ``ttl`` seconds)."""

    def __init__(
        self,
        pods: PodLookup,
        eci: EciApi,
        *,
        ttl: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pods = pods
        self._eci = eci
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _Cached | None = None
        self._counter = NodeCpuCounter()

    def _running(self) -> dict[str, PodDict]:
        by_group: dict[str, PodDict] = {}
        for pod in self._pods.list():
            meta = pod.get("metadata") or {}
            found = self._pods.get(str(meta.get("namespace")), str(meta.get("name")))
            if found and found[1] and (pod.get("status") or {}).get("phase") == "Running":
                by_group[found[1]] = found[0]
        return by_group

    def _fetch(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), ECI_BATCH):
            try:
                records.update(
                    latest_records(self._eci.describe_multi_container_group_metric(ids[start : start + ECI_BATCH]))
                )
            except EciError:
                continue  # a failed batch leaves those pods without usage in this scrape, not the others
        return records

    def get(self) -> tuple[list[PodMetrics], int]:
        """Every running pod's metrics and the node's cumulative CPU nanoseconds (ECI numbers cached)."""
        with self._lock:
            by_group = self._running()
            if self._cached is None or self._clock() - self._cached.at >= self._ttl:
                self._cached = _Cached(self._clock(), self._fetch(sorted(by_group)))
            records = self._cached.records
            sampled = [pod_metrics(pod, records[gid]) for gid, pod in by_group.items() if gid in records]
            # Only sampled pods feed the node counter: a pod's first sample then adds its whole CPU
            # once, and a repeated (cached) sample adds nothing.
            node_cpu = self._counter.update(sampled)
            fresh = [pod_metrics(pod, {}) for gid, pod in by_group.items() if gid not in records]
            return sampled + fresh, node_cpu
