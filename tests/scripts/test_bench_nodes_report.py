"""The pure half of `scripts/bench.py --nodes`: the spread of the pods, the node names, the run order and the
table of several nodes against one. Hand-made results; nothing runs or is timed here.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_nodes_report as nodes


def result(mode: str, k: int, rnd: int = 1, **figures: Any) -> dict[str, Any]:
    """One run's result with the fields the report reads."""
    return {
        "subject": nodes.subject(mode, k),
        "nodes": k,
        "pods": figures.pop("pods", 5000),
        "round": rnd,
        "complete": figures.pop("complete", True),
        "pods_per_s_running": figures.pop("pods_per_s", 50.0),
        "create_span_s": 90.0,
        "running_after_last_create_s": figures.pop("after", 4.0),
        "latency_s": {"p50": 3.0, "p90": 4.0, "p99": 6.0},
        "daemon_cpu_s_per_pod": {"create_phase": figures.pop("cpu", 0.010)},
        "kube_requests_per_pod": {"whole_run": {"POST": 5.0, "PATCH": 1.0, "DELETE": 1.0}},
        "apiserver_cpu_s_per_pod": 0.02,
        "fake_cpu_s_per_pod": 0.003,
        "daemon_peak_rss_mb": max(figures.get("rss", [200.0])),
        "daemon_peak_rss_mb_each": figures.pop("rss", [200.0]),
        "load_start": [3.0, 3.0, 3.0],
        "measured_at": "2026-12-03T06:30:00Z",
    }


def test_pods_are_spread_round_robin_so_every_prefix_is_even() -> None:
    names = ["bench-x-a", "bench-x-b"]
    spread = [nodes.node_of(i, names) for i in range(5000)]
    assert Counter(spread) == {"bench-x-a": 2500, "bench-x-b": 2500}
    assert spread[:4] == ["bench-x-a", "bench-x-b", "bench-x-a", "bench-x-b"]
    assert {nodes.node_of(i, ["only"]) for i in range(10)} == {"only"}


def test_one_node_keeps_the_bench_name_and_more_are_suffixed() -> None:
    assert nodes.node_names("unlimited-bare-500-1n-r1", 1) == ["bench-unlimited-bare-500-1n-r1"]
    assert nodes.node_names("r", 3) == ["bench-r-a", "bench-r-b", "bench-r-c"]


def test_the_plan_alternates_which_configuration_runs_first() -> None:
    assert nodes.plan([1, 2], [5000], 2) == [(1, 5000, 1), (1, 5000, 2), (2, 5000, 2), (2, 5000, 1)]


def test_the_table_has_medians_per_configuration_the_daemons_rss_and_the_ratios() -> None:
    runs = [
        result("unlimited", 1, 1, pods_per_s=40.0, after=10.0, rss=[240.0]),
        result("unlimited", 2, 1, pods_per_s=50.0, after=4.0, cpu=0.012, rss=[150.0, 160.0]),
        result("unlimited", 1, 2, pods_per_s=44.0, after=8.0, rss=[250.0]),
        result("unlimited", 2, 2, pods_per_s=54.0, after=6.0, cpu=0.012, rss=[140.0, 150.0]),
        result("unlimited", 2, 3, pods_per_s=1.0, complete=False),
    ]
    text = nodes.markdown(runs)
    lines = text.splitlines()
    one = next(line for line in lines if line.startswith("| 5000 | unlimited, 1 node |"))
    two = next(line for line in lines if line.startswith("| 5000 | unlimited, 2 nodes |"))
    assert lines.index(one) < lines.index(two)
    assert "| 2 | 42.0 |" in one and "| 9.0 s |" in one and "| 245 MB (245 MB) |" in one
    assert "| 2 (+1 incomplete) | 52.0 |" in two and "| 5.0 s |" in two and "| 155 MB (300 MB) |" in two
    assert "12.0 ms (+ 3.0 ms in the fake)" in two
    # 52 / 42 pods/s, 5.0 / 9.0 s after the last create, 12 / 10 ms of CPU per pod.
    assert "| 5000 | unlimited, 2 nodes | 1.24 | 0.56 | 1.20 |" in lines
    assert lines[0].startswith("Measured 2026-12-03T06:30:00Z")


def test_no_ratio_without_a_one_node_run() -> None:
    assert "against 1 node" not in nodes.markdown([result("unlimited", 2)])
