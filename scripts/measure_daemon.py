"""Measure the daemon end to end: pod creation → Running for 1 pod and for N pods, ECI calls per
pod (the fake's counters) and Kubernetes writes per pod (the daemon's own counts, cross-checked
with the API server's ``apiserver_request_total``).

Runs a private control plane, a fake ECI (lifecycle delays as given) and `vkeci run` with its
production defaults unless flags say otherwise. Prints a Markdown table and writes JSON.

    .venv/bin/python -m e2e.netns -- \
        .venv/bin/python scripts/measure_daemon.py [--pods 100] [--status-interval 5] [--out .bench/daemon.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the e2e harness package (not installed: it is not in the wheel)

from e2e.harness import (  # noqa: E402
    DaemonProcess,
    Kube,
    fake_groups,
    nginx_deployment,
    private_stand,
    running,
    wait_for,
)
from fakes.eci.server import FakeECI  # noqa: E402

WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


def apiserver_writes(kube: Kube) -> Counter[str]:
    """apiserver_request_total for write verbs, keyed "VERB resource[/subresource]"."""
    text = kube.client.request("GET", "/metrics").text
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("verb") in WRITE_VERBS:
            key = f"{labels['verb']} {labels.get('resource', '')}"
            if labels.get("subresource"):
                key += "/" + labels["subresource"]
            counts[key] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def eci_calls(fake: FakeECI) -> Counter[str]:
    return Counter({a: v["total"] for a, v in fake.faults.call_counts()["by_action"].items()})


def run_to_running(kube: Kube, namespace: str, node: str, name: str, replicas: int, timeout: float) -> dict[str, Any]:
    """Create a Deployment of ``replicas`` and time each pod from its creation to observed Running."""
    started = time.monotonic()
    kube.create(namespace, nginx_deployment(name, node, replicas))
    first_seen: dict[str, float] = {}
    running_at: dict[str, float] = {}
    deadline = started + timeout
    while time.monotonic() < deadline:
        now = time.monotonic()
        for pod in kube.pods(namespace, f"app={name}"):
            uid = pod["metadata"]["uid"]
            first_seen.setdefault(uid, now)
            if running(pod):
                running_at.setdefault(uid, now)
        if len(running_at) >= replicas:
            break
        time.sleep(0.1)
    if len(running_at) < replicas:
        raise SystemExit(f"only {len(running_at)}/{replicas} pods Running after {timeout:.0f}s")
    # Latency per pod from the Deployment's creation (what a user waits for) and from the pod's creation.
    total = max(running_at.values()) - started
    per_pod = sorted(running_at[u] - first_seen[u] for u in running_at)
    return {
        "replicas": replicas,
        "all_running_s": round(total, 2),
        "pod_p50_s": round(statistics.median(per_pod), 2),
        "pod_p90_s": round(per_pod[int(0.9 * (len(per_pod) - 1))], 2),
        "pod_max_s": round(per_pod[-1], 2),
    }


def delete_all(kube: Kube, fake: FakeECI, namespace: str, node: str, name: str, timeout: float) -> float:
    started = time.monotonic()
    kube.scale(namespace, name, 0)
    wait_for(lambda: not kube.pods(namespace, f"app={name}"), timeout, "all pods deleted")
    wait_for(lambda: not fake_groups(fake, node), timeout, "all groups deleted")
    return round(time.monotonic() - started, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--status-interval", default="5", help="VKECI_STATUS_INTERVAL for the daemon (default 5)")
    parser.add_argument("--scheduling-delay", type=float, default=0.05, help="fake ECI Scheduling → Pending seconds")
    parser.add_argument("--pending-delay", type=float, default=0.1, help="fake ECI Pending → Running seconds")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "daemon.json"))
    args = parser.parse_args()

    fake_config = {"scheduling_delay_s": args.scheduling_delay, "pending_delay_s": args.pending_delay}
    with private_stand("vkeci-measure-", fake_config) as stand:
        cluster, fake, kube = stand.cluster, stand.fake, stand.kube
        node = f"vk-measure-{uuid.uuid4().hex[:4]}"
        stats_file = stand.work / "daemon-stats.json"
        daemon = DaemonProcess(
            cluster.kubeconfig,
            fake.endpoint,
            node,
            stand.work / "daemon.log",
            extra_args=[f"--stats-file={stats_file}"],
            env={"VKECI_STATUS_INTERVAL": args.status_interval, "VKECI_RESYNC_INTERVAL": "300", "VKECI_WORKERS": "16"},
        )
        try:
            daemon.start()
            wait_for(lambda: kube.ready(node) == "True", 60, "node Ready")
            cluster.kubectl("create", "namespace", "measure")
            results: dict[str, Any] = {
                "status_interval_s": float(args.status_interval),
                "fake_delays_s": [args.scheduling_delay, args.pending_delay],
            }
            results["one_pod"] = run_to_running(kube, "measure", node, "one", 1, 60)
            results["one_pod"]["delete_s"] = delete_all(kube, fake, "measure", node, "one", 60)

            eci_before, api_before = eci_calls(fake), apiserver_writes(kube)
            results["many_pods"] = run_to_running(kube, "measure", node, "many", args.pods, 600)
            time.sleep(2 * float(args.status_interval) + 1)  # let status writes settle
            results["many_pods"]["delete_s"] = delete_all(kube, fake, "measure", node, "many", 600)
            eci_delta = eci_calls(fake) - eci_before
            api_delta = apiserver_writes(kube) - api_before
        finally:
            daemon.stop()
        own = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    pods = args.pods
    results["eci_calls_per_pod"] = {k: round(v / pods, 2) for k, v in sorted(eci_delta.items())}
    results["eci_calls_per_pod_total"] = round(sum(eci_delta.values()) / pods, 2)
    pod_writes = {k: v for k, v in api_delta.items() if k.split(" ")[1].startswith(("pods", "events"))}
    results["apiserver_pod_and_event_writes_per_pod"] = {k: round(v / pods, 2) for k, v in sorted(pod_writes.items())}
    results["daemon_kube_requests_whole_run"] = own.get("kubernetes", {})
    results["daemon_eci_calls_whole_run"] = own.get("eci", {})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
