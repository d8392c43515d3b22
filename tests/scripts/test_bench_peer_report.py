"""The pure half of `make bench-peer`: medians over rounds, requests per pod from the API server's counters, the
three-way table and the ratios. Hand-made results; nothing runs or is timed here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_peer_report as peer
import bench_report as report

METRICS_BEFORE = """# TYPE apiserver_request_total counter
apiserver_request_total{code="201",resource="pods",subresource="",verb="POST"} 10
apiserver_request_total{code="201",resource="events",subresource="",verb="POST"} 3
"""
# 100 pods: the bench POSTed and DELETEd each (its own); the daemon wrote 2 events, 1 status and 1 DELETE each.
METRICS_AFTER = """# TYPE apiserver_request_total counter
apiserver_request_total{code="201",resource="pods",subresource="",verb="POST"} 110
apiserver_request_total{code="201",resource="events",subresource="",verb="POST"} 203
apiserver_request_total{code="200",resource="pods",subresource="status",verb="PATCH"} 99
apiserver_request_total{code="409",resource="pods",subresource="status",verb="PATCH"} 1
apiserver_request_total{code="200",resource="pods",subresource="",verb="DELETE"} 200
"""


def result(subject: str, pods: int = 1000, rnd: int = 1, **figures: Any) -> dict[str, Any]:
    """One run's result with the fields the report reads."""
    per_verb = figures.pop("per_verb", {"PATCH": 1.0, "DELETE": 1.0})
    detail = figures.pop("detail", {"PATCH pods/status": 1.0, "DELETE pods": 1.0})
    return {
        "subject": subject,
        "pods": pods,
        "round": rnd,
        "complete": figures.pop("complete", True),
        "pods_per_s_running": figures.pop("pods_per_s", 100.0),
        "create_span_s": figures.pop("span", 10.0),
        "running_after_last_create_s": figures.pop("after", 0.5),
        "latency_s": {"p50": figures.pop("p50", 0.3), "p90": 0.5, "p99": figures.pop("p99", 0.7)},
        "daemon_cpu_s_per_pod": {"create_phase": figures.pop("cpu", 0.001), "delete_phase": 0.0005},
        "kube_requests_per_pod": {"whole_run": per_verb, "whole_run_detail": detail},
        "apiserver_cpu_s_per_pod": figures.pop("apiserver", 0.004),
        "daemon_peak_rss_mb": figures.pop("rss", 60.0),
        "load_start": figures.pop("load", [1.0, 1.0, 1.0]),
        "measured_at": figures.pop("at", "2026-12-02T17:00:00Z"),
        **figures,
    }


def test_requests_per_pod_come_from_the_counter_deltas_minus_the_bench_own() -> None:
    # The same path bench_peer.py takes: parse both /metrics pages, subtract, take the bench's own away.
    before, after = report.parse_request_totals(METRICS_BEFORE), report.parse_request_totals(METRICS_AFTER)
    own = {("POST", "pods"): 100.0, ("DELETE", "pods"): 100.0}
    daemon = report.counter_delta(own, report.counter_delta(before, after))
    whole = {"whole_run": report.per_pod(report.by_verb(daemon), 100)}
    assert whole["whole_run"] == {"POST": 2.0, "PATCH": 1.0, "DELETE": 1.0}
    assert peer.requests_per_pod({"kube_requests_per_pod": whole}) == 4.0


def test_requests_per_pod_unknown_without_counters() -> None:
    assert peer.requests_per_pod({}) is None
    assert peer.requests_per_pod({"kube_requests_per_pod": {"whole_run": {}}}) is None


def test_median_ignores_unknown_values() -> None:
    assert peer.median([3.0, None, 1.0, 2.0]) == 2.0
    assert peer.median([1.0, 4.0]) == 2.5
    assert peer.median([None]) is None


def test_request_detail_is_the_mean_over_rounds_largest_first_small_ones_dropped() -> None:
    runs = [
        result("peer", detail={"POST events": 2.0, "PUT pods/status": 2.0, "GET nodes": 0.01}),
        result("peer", detail={"POST events": 2.0, "PUT pods/status": 1.0, "DELETE pods": 1.0}),
    ]
    assert peer.request_detail(runs) == {"POST events": 2.0, "PUT pods/status": 1.5, "DELETE pods": 0.5}
    assert list(peer.request_detail(runs)) == ["POST events", "PUT pods/status", "DELETE pods"]


def test_aggregate_takes_the_median_of_complete_rounds_per_size_and_daemon() -> None:
    runs = [
        result("peer", rnd=1, pods_per_s=170.0),
        result("peer", rnd=2, pods_per_s=180.0),
        result("peer", rnd=3, pods_per_s=190.0),
        result("peer", rnd=4, pods_per_s=5.0, complete=False),
        result("peer", pods=5000, pods_per_s=150.0),
    ]
    rows = peer.aggregate(runs)
    assert rows[(1000, "peer")]["pods_per_s"] == 180.0
    assert rows[(1000, "peer")]["rounds"] == 3
    assert rows[(1000, "peer")]["incomplete"] == 1
    assert rows[(5000, "peer")]["pods_per_s"] == 150.0


def test_ratios_are_vkeci_over_each_peer_per_size() -> None:
    runs = [
        result("vk-eci", pods_per_s=84.0, cpu=0.0075, per_verb={"POST": 5.0, "PATCH": 1.0, "DELETE": 1.0}),
        result("peer", pods_per_s=168.0, cpu=0.0015, per_verb={"POST": 2.0, "PUT": 2.0, "DELETE": 1.0}),
        result("floor", pods_per_s=210.0, cpu=0.0, per_verb={"PATCH": 1.0, "DELETE": 1.0}),
    ]
    r = peer.ratios(peer.aggregate(runs))[1000]
    assert r["pods_per_s/peer"] == 0.5
    assert r["pods_per_s/floor"] == 0.4
    assert r["cpu_s_per_pod/peer"] == 5.0
    assert r["cpu_s_per_pod/floor"] is None  # nothing to divide by
    assert r["requests_per_pod/peer"] == 1.4
    assert r["requests_per_pod/floor"] == 3.5


def test_no_ratio_row_without_vkeci() -> None:
    assert peer.ratios(peer.aggregate([result("peer"), result("floor")])) == {}


def test_markdown_rows_in_daemon_order_with_units_and_the_machine_load() -> None:
    runs = [
        result("floor", load=[3.5, 2.0, 1.0], at="2026-12-02T17:05:00Z"),
        result("vk-eci", pods_per_s=84.0, cpu=0.0075, fake_cpu_s_per_pod=0.002, load=[0.75, 1.0, 1.0]),
        result("peer", detail={"POST events": 2.0, "PUT pods/status": 2.0}),
        result("vk-eci", pods=200, rnd=1),
    ]
    text = peer.markdown(runs)
    assert "Measured 2026-12-02T17:00:00Z to 2026-12-02T17:05:00Z" in text
    assert "load average at the start of the runs 0.75-3.50" in text
    body = [line for line in text.splitlines() if line.startswith("| 1000 | ")]
    assert [line.split(" | ")[1] for line in body[:3]] == [peer.LABELS[d] for d in ("vk-eci", "peer", "floor")]
    assert "| 84.0 | 10.0 s |" in body[0] and "| 7.5 ms (+ 2.0 ms in the fake) |" in body[0]
    assert "| 1.0 ms |" in body[1]  # no fake behind the peer
    assert "2.0 (POST events 2.00, PUT pods/status 2.00)" in body[1]
    assert "| 200 | " in text.split("| N | daemon")[1]
    assert "| 1000 | 0.84 | 0.84 |" in text  # vk-eci 84 pods/s against 100 for the peer and the floor


def test_markdown_counts_incomplete_runs() -> None:
    text = peer.markdown([result("peer"), result("peer", rnd=2, complete=False)])
    assert "| 1 (+1 incomplete) |" in text


def test_markdown_replaces_only_its_own_section() -> None:
    doc = f"# B\n{report.TABLE_BEGIN}\nold bench\n{report.TABLE_END}\ntext\n{peer.TABLE_BEGIN}\nold\n{peer.TABLE_END}\n"
    out = report.replace_table(doc, "new\n", peer.TABLE_BEGIN, peer.TABLE_END)
    assert "old bench" in out and "\nold\n" not in out and f"{peer.TABLE_BEGIN}\nnew\n{peer.TABLE_END}" in out


@pytest.mark.parametrize(
    ("rounds", "expected"),
    [
        (1, [(1, 200, "vk-eci"), (1, 200, "peer"), (1, 200, "floor")]),
        (
            3,
            [
                *[(1, 200, "vk-eci"), (1, 200, "peer"), (1, 200, "floor")],
                *[(2, 200, "peer"), (2, 200, "floor"), (2, 200, "vk-eci")],
                *[(3, 200, "floor"), (3, 200, "vk-eci"), (3, 200, "peer")],
            ],
        ),
    ],
)
def test_plan_interleaves_and_rotates_the_daemons(rounds: int, expected: list[tuple[int, int, str]]) -> None:
    assert peer.plan(["vk-eci", "peer", "floor"], [200], rounds) == expected


def test_plan_runs_every_size_in_every_round() -> None:
    runs = peer.plan(["peer", "floor"], [1000, 5000], 2)
    assert runs[:4] == [(1, 1000, "peer"), (1, 1000, "floor"), (1, 5000, "peer"), (1, 5000, "floor")]
    assert runs[4:] == [(2, 1000, "floor"), (2, 1000, "peer"), (2, 5000, "floor"), (2, 5000, "peer")]
