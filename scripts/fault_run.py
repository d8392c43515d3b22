"""`make fault-run`: the final fault run of issue 12 (item 5) on the local control plane and the fake ECI.

One `vkeci run` for a virtual node (the harness's fast timings, leader election on), a second Node kept
Ready (``ReadyNode``: the node lifecycle controller then evicts as in a real cluster, see
tests/e2e/test_eci_outage.py), and a Deployment of ``--replicas`` nginx pods, while the fake ECI drops 20 %
of its replies after acting, answers 10 % with a 5xx and throttles every action (5 % ``Throttling.User``
plus ECI's documented per-minute limits). The daemon is killed with SIGKILL at 25, 50 and 75 % of the
pods Running and once during the scale to 0, and started again after ``--pause`` seconds with the same
settings. A monitor samples the node's Ready condition every second and the pods and the fake's groups
every few seconds. Figures (see :func:`summarize`): pods created, kills, faults injected by kind,
duplicate and orphan groups, pods wrongly Failed, pods evicted, secrets in logs or the API, Ready flips,
time to all Running and to 0. Written to ``<out>/report.json`` and ``<out>/report.md``.

    make fault-run FAULT_RUN_ARGS="--replicas 30 --ramp-kills 0.5 --down-kills 0"   # a quick try
    make fault-run                                                                  # 300 pods, 4 kills
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the e2e harness package (not installed: it is not in the wheel)

from e2e.cluster import Cluster  # noqa: E402
from e2e.harness import (  # noqa: E402
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    JSON,
    DaemonProcess,
    Kube,
    ReadyNode,
    fake_calls,
    fake_groups,
    nginx_deployment,
    running,
    set_faults,
    start_fake_process,
    stop_process,
    tags_of,
    wait_for,
)
from vkeci.clients.kube import KubeError  # noqa: E402
from vkeci.core.node import ECI_UNREACHABLE_REASON  # noqa: E402

NAMESPACE, APP = "faultrun", "web"
# What faults_spec injects; any other outcome that is not OK is ECI's own answer (e.g. InvalidParameter.NotFound
# for a delete repeated after its reply was dropped).
INJECTED = ("Dropped", "Throttling.User", "ServiceUnavailable", "InternalError")


def faults_spec(drop: float, errors: float, throttle: float, seed: int) -> JSON:
    """The fake's fault set (PUT /_fake/faults): replies dropped after acting, 5xx half 503 and half 500,
    a random share of ``Throttling.User`` on every action (the SDK sees ``x-acs-retry-after``) on top of
    ECI's documented per-minute limits. The first matching error rule wins, so the 5xx rules' rates are
    raised to keep their share of all calls at ``errors``."""
    left = 1.0 - throttle
    return {
        "drop_response": {"*": drop},
        "errors": [
            {"action": "*", "code": "Throttling.User", "rate": throttle},
            {"action": "*", "code": "ServiceUnavailable", "status": 503, "rate": errors / 2 / left},
            {"action": "*", "code": "InternalError", "status": 500, "rate": errors / 2 / (left - errors / 2)},
        ],
        "rate_limits": {"enabled": True},
        "seed": seed,
    }


# ---- the pure half: counting (tests/scripts/test_fault_run.py) ------------------------------------------


def duplicate_groups(groups: Iterable[JSON]) -> dict[str, list[str]]:
    """Live groups sharing a pod UID and attempt (one ClientToken): ``"uid/attempt"`` -> their ids."""
    by_key: dict[str, list[str]] = {}
    for group in groups:
        tags = tags_of(group)
        if not tags.get("UID"):
            continue
        key = f"{tags['UID']}/{tags.get('GroupAttempt', '0')}"
        by_key.setdefault(key, []).append(str(group.get("ContainerGroupId")))
    return {key: sorted(ids) for key, ids in by_key.items() if len(ids) > 1}


def orphan_groups(groups: Iterable[JSON], pod_uids: Iterable[str]) -> list[str]:
    """Ids of live groups whose pod (by the UID tag) is not among ``pod_uids``."""
    uids = set(pod_uids)
    return sorted(str(g.get("ContainerGroupId")) for g in groups if tags_of(g).get("UID") not in uids)


def flips(states: Iterable[str]) -> int:
    """Transitions in a sequence of observed condition states ("True", "False", "Unknown", "")."""
    count, last = 0, None
    for state in states:
        if last is not None and state != last:
            count += 1
        last = state
    return count


def fault_counts(calls: JSON) -> dict[str, int]:
    """Replies that were not OK, by outcome (``Dropped``, error codes), from ``GET /_fake/calls``."""
    out: Counter[str] = Counter()
    for action in (calls.get("by_action") or {}).values():
        for outcome, n in (action.get("outcomes") or {}).items():
            if outcome != "OK":
                out[outcome] += n
    return dict(sorted(out.items()))


def evicted(pods: Iterable[JSON], events: Iterable[JSON]) -> list[str]:
    """Pods the cluster evicted: a ``DisruptionTarget`` condition (the taint eviction controller sets it
    before it deletes), an ``Evicted`` event, or a ``TaintManagerEviction`` event that marks the pod for
    deletion (the same reason also says "Cancelling deletion" when the taint went before the toleration
    ran out: that is no eviction, see :func:`evictions_cancelled`). Sorted names."""
    names = {
        str(p["metadata"]["name"])
        for p in pods
        if any(c.get("type") == "DisruptionTarget" for c in (p.get("status") or {}).get("conditions") or [])
    }
    names |= {
        str((e.get("involvedObject") or {}).get("name"))
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == "Pod"
        and (
            e.get("reason") == "Evicted"
            or (e.get("reason") == "TaintManagerEviction" and str(e.get("message")).startswith("Marking for deletion"))
        )
    }
    return sorted(names)


def evictions_cancelled(events: Iterable[JSON]) -> int:
    """Pods whose eviction the taint eviction controller scheduled (a NoExecute taint) and then cancelled
    because the taint went away within the pod's toleration."""
    return sum(
        1
        for e in events
        if e.get("reason") == "TaintManagerEviction" and str(e.get("message")).startswith("Cancelling deletion")
    )


def back_after(kill_times: Iterable[float], log_text: str) -> list[float | None]:
    """Seconds from each kill (unix time) to the restarted daemon's next "node Ready changed ready=true"
    (its pod controller runs again: leadership taken, reconcile begun); None if it never said so."""
    readies = []
    for line in log_text.splitlines():
        if "node Ready changed ready=true" in line:
            stamp = line.split(" ", 1)[0]
            with contextlib.suppress(ValueError):
                readies.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    return [next((round(r - k, 1) for r in readies if r > k), None) for k in kill_times]


def summarize(raw: JSON) -> JSON:
    """The run's figures from what the monitor and the end checks collected (``raw``)."""
    return {
        "replicas": raw["replicas"],
        "pods_created": len(raw["pod_uids"]),
        "kills": len(raw["kills"]),
        "kills_at": raw["kills"],
        "back_after_kill_s": raw["back_after"],
        "daemon_exits_unasked": raw["unasked_exits"],
        "faults_injected": {k: v for k, v in raw["faults"].items() if k in INJECTED},
        "other_error_replies": {k: v for k, v in raw["faults"].items() if k not in INJECTED},
        "eci_calls": raw["calls_total"],
        "duplicate_groups": len(raw["duplicates"]),
        "duplicates": raw["duplicates"],
        "groups_seen": sum(len(ids) for ids in raw.get("groups_of", {}).values()),
        "pods_with_several_groups": {uid: ids for uid, ids in raw.get("groups_of", {}).items() if len(ids) > 1},
        "orphans": len(raw["orphans"]),
        "orphan_ids": raw["orphans"],
        "pods_wrongly_failed": len(raw["failed"]),
        "failed": raw["failed"],
        "pods_evicted": len(raw["evicted"]),
        "evicted": raw["evicted"],
        "evictions_scheduled_then_cancelled": raw["evictions_cancelled"],
        "pods_held_eci_unreachable": raw.get("held", 0),
        "secrets_found": raw["secrets"],
        "node_ready_flips": flips(raw["ready_states"]),
        "node_ready_changes": raw.get("ready_changes", []),
        "max_running": raw["max_running"],
        "time_to_all_running_s": raw["t_running"],
        "time_to_zero_s": raw["t_zero"],
        "left_at_end": raw["left"],
        "load": raw["load"],
        "notes": raw["notes"],
    }


def markdown(summary: JSON) -> str:
    """A short table of the figures that matter, for BENCHMARKS.md."""

    def secs(value: float | None) -> str:
        return "not reached" if value is None else f"{value:.0f} s"

    faults = ", ".join(f"{k} {v}" for k, v in summary["faults_injected"].items()) or "none"
    others = ", ".join(f"{k} {v}" for k, v in summary["other_error_replies"].items()) or "none"
    rows = [
        ("pods created (distinct UIDs)", summary["pods_created"]),
        ("daemon kills (SIGKILL)", summary["kills"]),
        ("node Ready again after each kill", ", ".join(secs(s) for s in summary["back_after_kill_s"]) or "-"),
        ("ECI calls / faults injected", f"{summary['eci_calls']} / {faults}"),
        ("other error replies (ECI's own)", others),
        ("duplicate groups", summary["duplicate_groups"]),
        (
            "groups seen / pods with more than one",
            f"{summary['groups_seen']} / {len(summary['pods_with_several_groups'])}",
        ),
        ("orphan groups at the end", summary["orphans"]),
        ("pods wrongly Failed", summary["pods_wrongly_failed"]),
        ("pods evicted", summary["pods_evicted"]),
        ("evictions scheduled, then cancelled", summary["evictions_scheduled_then_cancelled"]),
        ("pods held as ECIUnreachable (Warning)", summary["pods_held_eci_unreachable"]),
        ("secrets in logs/API", len(summary["secrets_found"])),
        ("node Ready flips", summary["node_ready_flips"]),
        (f"time to {summary['replicas']} Running", secs(summary["time_to_all_running_s"])),
        ("time to 0 pods and 0 groups", secs(summary["time_to_zero_s"])),
        ("load average (1 min) min/max", "{min} / {max}".format(**summary["load"])),
    ]
    return "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


# ---- the run ---------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"fault-run {time.strftime('%H:%M:%S')}: {message}", flush=True)


class Monitor:
    """Samples the run in the background: the node's Ready condition every second; the pods and the
    fake's live groups every ``interval`` seconds (duplicates, Failed pods, evictions, UIDs seen)."""

    def __init__(self, kube: Kube, endpoint: str, node: str, interval: float) -> None:
        self.kube, self.endpoint, self.node, self.interval = kube, endpoint, node, interval
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ready_states: list[str] = []
        self.ready_changes: list[str] = []  # "HH:MM:SS state" at each change (the first sample included)
        self.pod_uids: set[str] = set()
        self.failed: dict[str, JSON] = {}
        self.evicted: set[str] = set()
        self.duplicates: dict[str, list[str]] = {}
        self.groups_of: dict[str, set[str]] = {}  # pod UID -> every group id seen for it (a duplicate deleted
        # within one look would otherwise go unseen: each look is 3 s apart)
        self.running = 0
        self.max_running = 0
        self.live_pods = 0
        self.live_groups = 0
        self.loads: list[float] = []
        self.errors = 0
        self.threads = [
            threading.Thread(target=self._ready_loop, name="ready", daemon=True),
            threading.Thread(target=self._state_loop, name="state", daemon=True),
        ]

    def start(self) -> Monitor:
        for thread in self.threads:
            thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(30)

    def _ready_loop(self) -> None:
        while not self.stop.wait(1.0):
            try:
                state = self.kube.ready(self.node)
            except (KubeError, OSError):
                self.errors += 1
                continue
            with self.lock:
                if not self.ready_states or state != self.ready_states[-1]:
                    self.ready_changes.append(f"{time.strftime('%H:%M:%S')} {state or 'absent'}")
                self.ready_states.append(state)
                self.loads.append(os.getloadavg()[0])

    def _state_loop(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a slow apiserver or fake must not end the monitor
                self.errors += 1

    def sample(self) -> None:
        """One look at the pods and the groups."""
        pods = self.kube.pods(NAMESPACE, f"app={APP}")
        groups = fake_groups(self.endpoint, self.node)
        dups = duplicate_groups(groups)
        with self.lock:
            for pod in pods:
                meta, status = pod["metadata"], pod.get("status") or {}
                self.pod_uids.add(str(meta["uid"]))
                if status.get("phase") == "Failed":
                    self.failed.setdefault(
                        str(meta["name"]),
                        {"uid": meta["uid"], "reason": status.get("reason"), "message": status.get("message")},
                    )
            self.evicted |= set(evicted(pods, ()))
            for group in groups:
                uid = tags_of(group).get("UID", "")
                self.groups_of.setdefault(uid, set()).add(str(group.get("ContainerGroupId")))
            for key, ids in dups.items():
                self.duplicates[key] = sorted(set(self.duplicates.get(key, [])) | set(ids))
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            self.running = sum(1 for p in live if running(p))
            self.max_running = max(self.max_running, self.running)
            self.live_pods, self.live_groups = len(pods), len(groups)


def find_secret(secret: str, texts: dict[str, str]) -> list[str]:
    """Names of the texts that contain ``secret``."""
    return sorted(name for name, text in texts.items() if secret in text)


def run(args: argparse.Namespace) -> JSON:
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    raw: JSON = {"replicas": args.replicas, "kills": [], "unasked_exits": 0, "notes": [], "left": {}}
    raw["notes"].append(f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    cluster = Cluster(out / "cluster", progress=say, die_with_parent=True)
    cluster.up()
    config = out / "fake.json"  # JSON is YAML: the fake reads it as its config file
    config.write_text(json.dumps({"scheduling_delay_s": 1.0, "pending_delay_s": 2.0, "sandbox": "plain"}))
    fake_proc, endpoint = start_fake_process(
        ["--config", str(config)], ACCESS_KEY_ID, ACCESS_KEY_SECRET, out / "fake-eci.log"
    )
    kube = Kube(cluster.kubeconfig)
    node = f"vk-fault-{uuid.uuid4().hex[:4]}"
    daemon = DaemonProcess(cluster.kubeconfig, endpoint, node, out / "vkeci.log", cluster_name="faultrun")
    monitor = Monitor(kube, endpoint, node, args.interval)
    try:
        with ReadyNode(kube, f"stand-in-{uuid.uuid4().hex[:4]}", {"topology.kubernetes.io/region": "cn-hangzhou"}):
            daemon.start()
            wait_for(lambda: kube.ready(node) == "True", 120, "the virtual node Ready")
            cluster.kubectl("create", "namespace", NAMESPACE)
            wait_for(lambda: kube.get(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default"), 60, "default SA")
            set_faults(endpoint, faults_spec(args.drop, args.errors, args.throttle, args.seed))
            monitor.start()

            kill_times: list[float] = []

            def back() -> bool:
                # The next kill waits until the restarted daemon leads again (it waits out the old Lease,
                # 15 s): kills closer than that would only hit a standby.
                return daemon.log_text().count("leader: leading") > len(kill_times)

            def kill(phase: str) -> None:
                daemon.kill()
                kill_times.append(time.time())
                raw["kills"].append(f"{phase} at {monitor.running} Running, {monitor.live_groups} groups")
                say(f"kill -9 ({raw['kills'][-1]}); restart in {args.pause:.0f} s")
                time.sleep(args.pause)
                daemon.start()

            def keep_alive() -> None:
                if not daemon.alive:  # it exited on its own: a finding, and the run goes on
                    raw["unasked_exits"] += 1
                    raw["notes"].append(f"the daemon exited by itself with {daemon.proc and daemon.proc.returncode}")
                    daemon.start()

            say(f"creating a Deployment of {args.replicas}")
            started = time.monotonic()
            kube.create(NAMESPACE, nginx_deployment(APP, node, args.replicas))
            thresholds = sorted(args.ramp_kills)
            last_report = 0.0
            raw["t_running"] = None
            while time.monotonic() - started < args.ramp_timeout:
                keep_alive()
                if monitor.running >= args.replicas:
                    raw["t_running"] = round(time.monotonic() - started, 1)
                    break
                if thresholds and monitor.running >= thresholds[0] * args.replicas and back():
                    thresholds.pop(0)
                    kill("ramp")
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    say(f"{monitor.running}/{args.replicas} Running, {monitor.live_groups} groups")
                time.sleep(0.5)
            say(f"ramp: {monitor.running}/{args.replicas} Running after {time.monotonic() - started:.0f} s")
            if raw["t_running"] is None:
                raw["notes"].append(
                    f"only {monitor.running}/{args.replicas} Running after {args.ramp_timeout:.0f} s "
                    f"({monitor.live_groups} live groups, {len(thresholds)} ramp kills not made)"
                )
            pods_at_peak = kube.pods(NAMESPACE)
            say("scaling to 0")
            down = time.monotonic()
            kube.scale(NAMESPACE, APP, 0)
            down_kills = args.down_kills
            raw["t_zero"] = None
            while time.monotonic() - down < args.down_timeout:
                keep_alive()
                if monitor.live_pods == 0 and monitor.live_groups == 0:
                    raw["t_zero"] = round(time.monotonic() - down, 1)
                    break
                # While the deletes are under way: a tenth of the groups gone, or 10 s after the scale.
                deleting = monitor.live_groups <= 0.9 * args.replicas or time.monotonic() - down > 10
                if down_kills and deleting and back():
                    down_kills -= 1
                    kill("scale to 0")
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    say(f"scale to 0: {monitor.live_pods} pods, {monitor.live_groups} groups left")
                time.sleep(0.5)
            took = time.monotonic() - down
            say(f"scale to 0: {monitor.live_pods} pods, {monitor.live_groups} groups after {took:.0f} s")
            monitor.close()
            pods_end = kube.pods(NAMESPACE)
            groups_end = fake_groups(endpoint, node)
            events = list(kube.get(f"/api/v1/namespaces/{NAMESPACE}/events").get("items") or [])
            raw["left"] = {
                "pods": {p["metadata"]["name"]: (p.get("status") or {}).get("phase") for p in pods_end},
                "groups": {str(g["ContainerGroupId"]): g.get("Status") for g in groups_end},
            }
            raw["orphans"] = orphan_groups(groups_end, (p["metadata"]["uid"] for p in pods_end))
            raw["evicted"] = sorted(monitor.evicted | set(evicted(pods_end, events)))
            raw["evictions_cancelled"] = evictions_cancelled(events)
            held = {e["involvedObject"]["name"] for e in events if e.get("reason") == ECI_UNREACHABLE_REASON}
            raw["held"] = len(held)
            (out / "events.json").write_text(json.dumps(events, indent=1))
            raw["event_reasons"] = dict(Counter(str(e.get("reason")) for e in events).most_common())
            texts = {
                "vkeci.log": daemon.log_text(),
                "pods at peak": json.dumps(pods_at_peak),
                "pods at end": json.dumps(pods_end),
                "events": json.dumps(events),
                "node": json.dumps(kube.node(node)),
            }
            raw["secrets"] = find_secret(ACCESS_KEY_SECRET, texts)
            raw["back_after"] = back_after(kill_times, texts["vkeci.log"])
    finally:
        monitor.close()
        daemon.stop()
        calls = fake_calls(endpoint) if fake_proc.poll() is None else {}
        stop_process(fake_proc)
        cluster.down()
    raw["faults"], raw["calls_total"] = fault_counts(calls), calls.get("total", 0)
    with monitor.lock:
        raw.update(
            pod_uids=sorted(monitor.pod_uids),
            failed=monitor.failed,
            duplicates=duplicate_groups(groups_end) | monitor.duplicates,
            ready_states=monitor.ready_states,
            ready_changes=monitor.ready_changes,
            groups_of={uid: sorted(ids) for uid, ids in monitor.groups_of.items()},
            max_running=monitor.max_running,
        )
        loads = monitor.loads or [os.getloadavg()[0]]
    raw["load"] = {"min": round(min(loads), 2), "max": round(max(loads), 2)}
    raw["notes"].append(f"monitor errors (slow apiserver or fake): {monitor.errors}")
    summary = summarize(raw)
    summary["event_reasons"] = raw["event_reasons"]
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(markdown(summary))
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=300)
    parser.add_argument(
        "--ramp-kills", default="0.25,0.5,0.75", help="kill -9 when this share of the pods is Running (comma list)"
    )
    parser.add_argument("--down-kills", type=int, default=1, help="kills during the scale to 0")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between a kill and the restart")
    parser.add_argument("--drop", type=float, default=0.2, help="share of replies dropped after acting")
    parser.add_argument("--errors", type=float, default=0.1, help="share of calls answered 503/500")
    parser.add_argument("--throttle", type=float, default=0.05, help="share of calls answered Throttling.User")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between looks at pods and groups")
    parser.add_argument("--ramp-timeout", type=float, default=900.0)
    parser.add_argument("--down-timeout", type=float, default=600.0)
    parser.add_argument("--out", default=str(ROOT / ".bench" / "fault-run"), help="report, logs, control plane")
    args = parser.parse_args(argv)
    try:
        args.ramp_kills = [float(x) for x in args.ramp_kills.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--ramp-kills {args.ramp_kills!r}: expected shares such as 0.25,0.5")
    return args


def main(argv: list[str] | None = None) -> int:
    summary = run(parse_args(argv))
    print(json.dumps(summary, indent=1))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
