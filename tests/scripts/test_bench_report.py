"""The pure half of the burst benchmark: percentiles, counter deltas, summaries and the Markdown table.

No benchmark runs here (and nothing is timed): these are hand-made samples.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# scripts/ is not a package: the benchmark runs as `python scripts/bench.py`, which imports it as bench_report.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import bench_report as report

METRICS = """# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",\
subresource="",verb="POST",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",\
subresource="status",verb="PATCH",version="v1"} 7
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="pods",scope="resource",\
subresource="status",verb="PATCH",version="v1"} 1
# HELP apiserver_request_duration_seconds whatever
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{verb="POST",resource="pods",le="+Inf"} 5
apiserver_request_duration_seconds_count{verb="POST",resource="pods"} 5
apiserver_request_duration_seconds_sum{verb="POST",resource="pods"} 0.5
"""


def calls(**actions: dict[str, int]) -> dict:
    """A `/_fake/calls` answer."""
    by = {a: {"total": sum(o.values()), "outcomes": o} for a, o in actions.items()}
    return {"total": sum(v["total"] for v in by.values()), "by_action": by}


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(i) for i in range(1, 101)]  # 1..100
    p = report.percentiles(values)
    assert p["p50"] == pytest.approx(50.5)
    assert p["p90"] == pytest.approx(90.1)
    assert p["p99"] == pytest.approx(99.01)


def test_percentiles_of_one_and_none() -> None:
    assert report.percentiles([2.5]) == {"p50": 2.5, "p90": 2.5, "p99": 2.5}
    assert report.percentiles([]) == {"p50": None, "p90": None, "p99": None}


def test_percentiles_ignore_input_order() -> None:
    assert report.percentiles([3.0, 1.0, 2.0]) == report.percentiles([1.0, 2.0, 3.0])


def test_request_totals_sum_codes_and_join_subresources() -> None:
    totals = report.parse_request_totals(METRICS)
    assert totals == {("POST", "pods"): 5.0, ("PATCH", "pods/status"): 8.0}


def test_counter_delta_drops_unchanged_keys() -> None:
    assert report.counter_delta({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 5.0, "c": 1.0}) == {"b": 3.0, "c": 1.0}


def test_eci_delta_and_throttling() -> None:
    before = calls(CreateContainerGroup={"OK": 10})
    after = calls(CreateContainerGroup={"OK": 30, "Throttling.User": 2}, DescribeContainerGroupStatus={"OK": 4})
    delta = report.eci_delta(before, after)
    assert delta == {
        "CreateContainerGroup": {"OK": 20, "Throttling.User": 2},
        "DescribeContainerGroupStatus": {"OK": 4},
    }
    assert report.throttled(delta) == 2


def raw_run(n: int = 4) -> report.Raw:
    raw = report.Raw(mode="unlimited", workload="bare", pods=n, lifecycle_delay_s=3.0)
    raw.t_start, raw.t_last_create = 100.0, 101.0
    raw.created = {f"p{i}": 100.0 + i * 0.25 for i in range(n)}
    raw.running = {f"p{i}": 103.5 + i * 0.25 for i in range(n)}  # 3.5 s each: 0.5 s over the fake's delay
    raw.bound = {f"p{i}": 100.1 + i * 0.25 for i in range(n)}  # the scheduler took 0.1 s
    raw.t_all_running = max(raw.running.values())
    raw.t_delete_start, raw.t_eci_empty, raw.t_pods_gone = 200.0, 204.0, 205.0
    raw.steady_s = 30.0
    raw.eci = {
        "start": calls(DescribeRegions={"OK": 1}),
        "running": calls(DescribeRegions={"OK": 1}, CreateContainerGroup={"OK": n}, DescribeContainerGroups={"OK": n}),
        "steady": calls(
            DescribeRegions={"OK": 4},
            CreateContainerGroup={"OK": n},
            DescribeContainerGroups={"OK": n},
            DescribeContainerGroupStatus={"OK": 2},
        ),
        "end": calls(
            DescribeRegions={"OK": 4},
            CreateContainerGroup={"OK": n},
            DescribeContainerGroups={"OK": 2 * n},
            DescribeContainerGroupStatus={"OK": 2},
            DeleteContainerGroup={"OK": n},
        ),
    }
    raw.kube = {
        "start": {("POST", "pods"): 10.0},
        "running": {("POST", "pods"): 10.0 + n, ("PATCH", "pods/status"): 2.0 * n, ("POST", "events"): 3.0 * n},
        "steady": {("POST", "pods"): 10.0 + n, ("PATCH", "pods/status"): 2.0 * n, ("POST", "events"): 3.0 * n},
        "end": {
            ("POST", "pods"): 10.0 + n,
            ("PATCH", "pods/status"): 2.0 * n,
            ("POST", "events"): 3.0 * n,
            ("DELETE", "pods"): 2.0 * n,
        },
    }
    raw.own_kube = {
        "start": {},
        "running": {("POST", "pods"): float(n)},
        "steady": {("POST", "pods"): float(n)},
        "end": {("POST", "pods"): float(n), ("DELETE", "pods"): float(n)},
    }
    raw.cpu_s = {"start": 1.0, "running": 3.0, "steady": 3.1, "end": 4.0}
    raw.proc_cpu_s = {
        "start": {"kube-apiserver": 10.0, "vkeci": 1.0},
        "running": {"kube-apiserver": 25.5, "vkeci": 3.0},
    }
    raw.peak_rss_mb = 90.0
    return raw


def test_summarize_reports_the_issue_figures() -> None:
    result = report.summarize(raw_run(4))
    assert result["complete"] is True
    assert result["to_all_running_s"] == pytest.approx(4.25)
    assert result["running_after_last_create_s"] == pytest.approx(3.25)
    assert result["to_all_gone_s"] == pytest.approx(4.0)
    assert result["overhead_s"] == {"p50": 0.5, "p90": 0.5, "p99": 0.5}
    assert result["bind_lag_s"] == {"p50": 0.1, "p90": 0.1, "p99": 0.1}
    assert result["creates_per_pod"] == 1.0 and result["deletes_per_pod"] == 1.0
    assert result["throttled"] == 0
    # 2 status calls in 30 s for 4 pods: 2 / 4 / 0.5 min.
    assert result["steady_status_calls_per_pod_per_min"] == pytest.approx(1.0)
    # The bench's own creates and deletes are not the daemon's.
    assert result["kube_requests_per_pod"]["create_phase"] == {"PATCH": 2.0, "POST": 3.0}
    assert result["kube_requests_per_pod"]["delete_phase"] == {"DELETE": 1.0}
    assert result["kube_requests_per_pod"]["whole_run"] == {"DELETE": 1.0, "PATCH": 2.0, "POST": 3.0}
    assert result["daemon_cpu_s_per_pod"]["create_phase"] == pytest.approx(0.5)
    assert result["eci_calls_per_pod"]["delete_phase"] == {"DeleteContainerGroup": 1.0, "DescribeContainerGroups": 1.0}
    assert result["cpu_s_create_phase"] == {"kube-apiserver": 15.5, "vkeci": 2.0}
    json.dumps(result)  # JSON-able: no tuple keys left


def test_summarize_an_incomplete_run() -> None:
    raw = raw_run(4)
    raw.running.pop("p3")
    raw.t_all_running = None
    raw.t_eci_empty = None
    del raw.eci["steady"], raw.kube["steady"], raw.own_kube["steady"]  # no steady window was measured
    raw.steady_s = 0.0
    result = report.summarize(raw)
    assert result["complete"] is False
    assert result["running"] == 3
    assert result["steady_eci_calls"] == {} and result["kube_requests_per_pod"]["steady_total"] == {}
    assert result["to_all_running_s"] is None and result["pods_per_s_running"] is None
    assert "incomplete: 3/4 Running" in report.markdown_table([result])


def test_markdown_table_rows_and_replacement() -> None:
    a = report.summarize(raw_run(4))
    b = {**a, "mode": "limited", "pods": 2}
    table = report.markdown_table([b, a])
    lines = [line for line in table.splitlines() if line.startswith("| unlimited") or line.startswith("| limited")]
    assert lines[0].startswith("| unlimited | bare | 4 ")  # unlimited first
    assert "Create 1.00" in table and "Delete 1.00" in table
    doc = "# Benchmarks\n\nintro\n"
    once = report.replace_table(doc, table)
    twice = report.replace_table(once, "| new |\n")
    assert once.startswith(doc.rstrip("\n"))
    assert "| new |" in twice and "| unlimited | bare | 4 " not in twice
    assert twice.count(report.TABLE_BEGIN) == 1 and twice.endswith(report.TABLE_END + "\n")


def test_create_rate_leaves_out_the_initial_burst() -> None:
    # 100 groups at once (a token bucket's burst), then 900 at 15/s: 900/min sustained.
    times = [0.0] * 100 + [i / 15.0 for i in range(1, 901)]
    rate = report.create_rate(times)
    assert rate["sustained"] == pytest.approx(900.0, rel=0.01)
    assert rate["overall"] == pytest.approx(999.0, rel=0.01)
    assert report.create_rate([1.0]) == {"overall": None, "sustained": None}


def test_result_key_and_curve() -> None:
    assert report.result_key({"mode": "limited", "workload": "deployment", "pods": 100}) == "limited/deployment/100"
    curve = report.running_curve({"a": 10.5, "b": 10.0}, {"a": 13.0}, 10.0)
    assert curve == {"created": [0.0, 0.5], "running": [3.0]}
