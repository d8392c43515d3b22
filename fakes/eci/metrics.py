"""Monitoring data for DescribeContainerGroupMetric / DescribeMultiContainerGroupMetric (§4.2 shapes).

Synthetic but plausible (2-12 % of each container's CPU, 20-40 % of its memory, varying in time and per
group); the newest sample of a container that runs for real uses its /proc CPU and RSS. A test can steer a
group's usage (``PUT /_fake/groups/{id}/usage``, :func:`steer`): from then on its CPU is the steered rate,
split evenly over its containers, and the cumulative CPU counter integrates the steered rates, so a rate
computed from two samples (what metrics-server does) is exactly the steered one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fakes.eci.group import Group, rfc3339

# (group, container) -> (nano-cores, RSS bytes) of a live process, or None.
Usage = Callable[[Group, str], "tuple[int, int] | None"]


def steer(g: Group, now: float, cpu_cores: float | None, memory_bytes: int | None) -> None:
    """From ``now`` on, report ``cpu_cores`` of CPU and ``memory_bytes`` of working set for the whole group
    (None: keep what it reports now)."""
    g.usage_steer.append(
        {
            "at": now,
            "cpu_nano": None if cpu_cores is None else int(cpu_cores * 1e9),
            "memory": memory_bytes,
        }
    )


def _synthetic(g: Group, c: dict[str, Any], i: int, ts: float, seed: int) -> tuple[float, int, int]:
    """(cores, nano-cores, RSS) of container ``c`` (index ``i``) at ``ts`` when nobody steers it."""
    n = max(1, len(g.spec["Containers"]))
    # Synthetic but plausible: 2-12 % of the container's CPU and 20-40 % of its memory, varying in time.
    wobble = (seed * 7919 + int(ts) // 15 * 104729 + i * 31) % 1000 / 1000
    cores = c["Cpu"] or g.spec["Cpu"] / n
    mem_bytes = int((c["Memory"] or g.spec["Memory"] / n) * 2**30)
    return cores, int(cores * 1e9 * (0.02 + 0.10 * wobble)), int(mem_bytes * (0.2 + 0.2 * wobble))


def _steered_cpu(g: Group, c: dict[str, Any], i: int, ts: float, seed: int) -> tuple[int, int] | None:
    """(nano-cores, cumulative CPU ns) of a steered container at ``ts``; None before the first CPU steer.

    The counter is the synthetic one up to the first steer, then grows at each steered rate in turn."""
    steps = [s for s in g.usage_steer if s["cpu_nano"] is not None and s["at"] <= ts]
    if not steps:
        return None
    n = max(1, len(g.spec["Containers"]))
    first = max(steps[0]["at"], g.running_at)
    total = _synthetic(g, c, i, first, seed)[1] * max(0.0, first - g.running_at)
    for k, step in enumerate(steps):
        begin = max(step["at"], g.running_at)
        end = steps[k + 1]["at"] if k + 1 < len(steps) else ts
        total += step["cpu_nano"] / n * max(0.0, end - begin)
    return steps[-1]["cpu_nano"] // n, int(total)


def _steered_memory(g: Group, ts: float) -> int | None:
    values = [s["memory"] for s in g.usage_steer if s["memory"] is not None and s["at"] <= ts]
    return values[-1] // max(1, len(g.spec["Containers"])) if values else None


def record(g: Group, ts: float, seed: int, usage: Usage | None) -> dict[str, Any]:
    """One sample in the DescribeContainerGroupMetric `Records[]` shape."""
    containers = []
    total_cpu = total_mem = total_ns = 0
    for i, c in enumerate(g.spec["Containers"]):
        real = usage(g, c["Name"]) if usage is not None else None
        cores, nano, rss = _synthetic(g, c, i, ts, seed)
        mem_bytes = int((c["Memory"] or g.spec["Memory"] / max(1, len(g.spec["Containers"]))) * 2**30)
        if real is not None:
            nano, rss = max(real[0], 1), max(real[1], 4096)
        cumulative = int(nano * max(0.0, ts - g.running_at))
        steered = _steered_cpu(g, c, i, ts, seed)
        if steered is not None:
            nano, cumulative = steered
        rss = _steered_memory(g, ts) or rss
        total_cpu += nano
        total_mem += rss
        total_ns += cumulative
        containers.append(
            {
                "Name": c["Name"],
                "CPU": {
                    "Limit": int(cores * 1000),
                    "Load": int(nano / 1e6),
                    "UsageCoreNanoSeconds": cumulative,
                    "UsageNanoCores": nano,
                },
                "Memory": {
                    "AvailableBytes": max(0, mem_bytes - rss),
                    "Cache": rss // 10,
                    "Rss": rss,
                    "UsageBytes": rss + rss // 10,
                    "WorkingSet": rss,
                },
            }
        )
    cap = int(g.spec["Memory"] * 2**30)
    return {
        "Timestamp": rfc3339(ts),
        "CPU": {
            "Limit": int(g.spec["Cpu"] * 1000),
            "Load": int(total_cpu / 1e6),
            "UsageCoreNanoSeconds": total_ns,
            "UsageNanoCores": total_cpu,
        },
        "Memory": {
            "AvailableBytes": max(0, cap - total_mem),
            "Cache": total_mem // 10,
            "Rss": total_mem,
            "UsageBytes": total_mem + total_mem // 10,
            "WorkingSet": total_mem,
        },
        "Containers": containers,
        "Disk": [{"Device": "vda", "ReadBytes": 4096 * seed % 10**7, "ReadIO": 12, "WriteBytes": 8192, "WriteIO": 3}],
        "Filesystem": [
            {"FsName": "/", "Category": "system", "Capacity": 30 * 2**30, "Usage": 2**30, "Available": 29 * 2**30}
        ],
        "Network": {
            "Interfaces": [
                {
                    "Name": "eth0",
                    "RxBytes": int(1000 * max(0.0, ts - g.running_at)),
                    "RxPackets": int(10 * max(0.0, ts - g.running_at)),
                    "RxErrors": 0,
                    "RxDrops": 0,
                    "TxBytes": int(800 * max(0.0, ts - g.running_at)),
                    "TxPackets": int(8 * max(0.0, ts - g.running_at)),
                    "TxErrors": 0,
                    "TxDrops": 0,
                }
            ]
        },
    }


def series(
    g: Group, now: float, start: float | None, end: float | None, period: int, usage: Usage
) -> list[dict[str, Any]]:
    """Samples every `period` s in [start, end] (the last 5 minutes at 15 s without both); the newest
    sample of a live real process uses its /proc figures."""
    if start is None or end is None:
        start, end, period = now - 300, now, 15
    start = max(start, g.running_at)
    end = min(end, now)
    seed = int.from_bytes(g.id.encode()[-4:], "big")
    out: list[dict[str, Any]] = []
    t = start - (start % period) + (period if start % period else 0)
    while t <= end and len(out) < 1440:
        out.append(record(g, t, seed, usage if now - t < period else None))
        t += period
    if not out and g.running_at <= end:
        # Started less than a period ago: one sample now rather than nothing.
        out.append(record(g, end, seed, usage))
    return out
