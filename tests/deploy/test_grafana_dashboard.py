"""deploy/grafana/vkeci-dashboard.json: every query reads series (and labels) the daemon really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from vkeci.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "vkeci-dashboard.json"
FUNCTIONS = {"sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without"}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"[^"]*"\s*')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
TARGET_LABELS = {"job", "instance"}  # added by Prometheus when it scrapes


class State:
    def pods_by_phase(self) -> dict[str, int]:
        return {"Running": 1}

    def groups_by_status(self) -> dict[str, int]:
        return {"Running": 1}

    def queue_depth(self) -> int:
        return 0

    def status_backlog(self) -> int:
        return 0

    def lease_renewed_ago(self) -> float | None:
        return 1.0

    def eci_healthy(self) -> bool:
        return True


def exported() -> dict[str, set[str]]:
    """Sample name -> its label names, from a daemon's exposition with every series observed once."""
    metrics = Metrics()
    metrics.watch(State())
    metrics.eci_call("CreateContainerGroup", "ok", 0.0, 0.1)
    metrics.kube_request("PATCH", "pods/status", "200", 0.0, 0.01, priority=False)
    metrics.queue_retries.labels("eci").inc()
    metrics.create_latency.observe(1.0)
    metrics.status_lag.observe(1.0)
    metrics.events.labels("eci", "posted").inc()
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels") or [])
    return found


def test_every_query_reads_exported_series_and_labels():
    series = exported()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets") or []]
    assert len(exprs) >= 20
    problems = []
    for expr in exprs:
        selectors = SELECTOR.findall(expr)
        if not selectors:
            problems.append(f"{expr}: reads no series")
        labels = set(TARGET_LABELS)
        for name, matchers in selectors:
            if name not in series:
                problems.append(f"{expr}: {name} is not exported")
                continue
            labels |= series[name]
            used = {m.group(1) for m in MATCHER.finditer(matchers)}
            if used - series[name] - TARGET_LABELS:
                problems.append(f"{expr}: {name} has no label {sorted(used - series[name] - TARGET_LABELS)}")
        for group in GROUPING.findall(expr):
            wanted = {g.strip() for g in group.split(",") if g.strip()}
            if wanted - labels:
                problems.append(f"{expr}: groups by {sorted(wanted - labels)}, which no series in it has")
        # Anything left that looks like a name must be a function: a series without {} would slip past.
        rest = GROUPING.sub("", SELECTOR.sub("", expr))
        rest = re.sub(r"\[[^\]]*\]", "", rest)
        words = set(re.findall(r"\b[a-zA-Z_][a-zA-Z0-9_]*\b", rest)) - FUNCTIONS
        if words:
            problems.append(f"{expr}: unknown words {sorted(words)}")
    assert problems == []


def test_the_dashboard_is_importable():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    for panel in panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
