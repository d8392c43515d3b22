"""Monitoring data for DescribeContainerGroupMetric / DescribeMultiContainerGroupMetric (§4.2 shapes).

Synthetic but plausible (2-12 % of each container's CPU, 20-40 % of its memory, varying every 15 s and per
group), with a cumulative CPU counter that is the integral of that rate; the newest sample of a container
that runs for real uses its /proc CPU and RSS. A test can steer a
group's usage (``PUT /_fake/groups/{id}/usage``, :func:`steer`): from then on its CPU is the steered rate,
split evenly over its containers, and the cumulative CPU counter integrates the steered rates, so a rate
computed from two samples (what metrics-server does) is exactly the steered one.
"""

from __future__ import annotations

import functools
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


# The synthetic CPU share of container i in 15 s bucket k is 2 % + 10 % x w/1000, with
# w = (seed * 7919 + i * 31 + k * 104729) % 1000: a step function of time. 104729 % 1000 = 729 is coprime with
# 1000, so w runs through 0..999 once every 1000 buckets, which makes its running sum cheap (_wobble_sum).
_BUCKET_S = 15
_PERIOD = 1000
_STEP = 104729


def _wobble(offset: int, k: int) -> int:
    return (offset + k * _STEP) % _PERIOD


@functools.lru_cache(maxsize=_PERIOD)
def _wobble_prefix(residue: int) -> tuple[int, ...]:
    """Running sums of the wobble over the first m buckets of a period, for an offset of ``residue``."""
    sums = [0]
    for k in range(_PERIOD):
        sums.append(sums[-1] + _wobble(residue, k))
    return tuple(sums)


def _wobble_sum(offset: int, k0: int, k1: int) -> int:
    """Sum of the wobble over buckets k0 <= k < k1 (0 <= k0 <= k1)."""

    def upto(n: int) -> int:
        return (n // _PERIOD) * (_PERIOD * (_PERIOD - 1) // 2) + _wobble_prefix(offset % _PERIOD)[n % _PERIOD]

    return upto(k1) - upto(k0)


def _synthetic(g: Group, c: dict[str, Any], i: int, ts: float, seed: int) -> tuple[float, int, int, int]:
    """(cores, nano-cores, RSS, cumulative CPU ns since Running) of container ``c`` (index ``i``) at ``ts``
    when nobody steers it. The counter is the exact integral of the rate, so a rate over two samples is the
    mean of the rates between them and the counter never goes back."""
    n = max(1, len(g.spec["Containers"]))
    offset = seed * 7919 + i * 31
    wobble = _wobble(offset, int(ts) // _BUCKET_S) / _PERIOD
    cores = c["Cpu"] or g.spec["Cpu"] / n
    mem_bytes = int((c["Memory"] or g.spec["Memory"] / n) * 2**30)
    start = g.running_at
    cumulative = 0
    if ts > start:
        ka, kb = int(start) // _BUCKET_S, int(ts) // _BUCKET_S
        if ka == kb:
            wobble_time = _wobble(offset, ka) * (ts - start)
        else:
            wobble_time = (
                _wobble(offset, ka) * (_BUCKET_S * (ka + 1) - start)
                + _BUCKET_S * _wobble_sum(offset, ka + 1, kb)
                + _wobble(offset, kb) * (ts - _BUCKET_S * kb)
            )
        cumulative = int(cores * 1e9 * (0.02 * (ts - start) + 0.10 * wobble_time / _PERIOD))
    return cores, int(cores * 1e9 * (0.02 + 0.10 * wobble)), int(mem_bytes * (0.2 + 0.2 * wobble)), cumulative


def _steered_cpu(g: Group, c: dict[str, Any], i: int, ts: float, seed: int) -> tuple[int, int] | None:
    """(nano-cores, cumulative CPU ns) of a steered container at ``ts``; None before the first CPU steer.

    The counter is the synthetic one up to the first steer, then grows at each steered rate in turn."""
    steps = [s for s in g.usage_steer if s["cpu_nano"] is not None and s["at"] <= ts]
    if not steps:
        return None
    n = max(1, len(g.spec["Containers"]))
    total = float(_synthetic(g, c, i, max(steps[0]["at"], g.running_at), seed)[3])
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
        cores, nano, rss, cumulative = _synthetic(g, c, i, ts, seed)
        mem_bytes = int((c["Memory"] or g.spec["Memory"] / max(1, len(g.spec["Containers"]))) * 2**30)
        if real is not None:
            # The counter stays the synthetic one: /proc gives the live rate, not a history since Running.
            nano, rss = max(real[0], 1), max(real[1], 4096)
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
