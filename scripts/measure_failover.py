"""Measure leader fail-over (issue 16): kill -9 the leading replica of a node in the middle of a burst,
several times, and time the take-over. Prints min/median/max and writes JSON.

A private control plane, the fake ECI (creates slowed to 0.3 s so the kill lands mid-burst) and `vkeci run`
replicas of one node with the harness's fast timings and the default election timings (15/10/2 s). Each
round starts a new standby, bursts ``--pods`` pods, kills the leader once ``--kill-after`` groups exist,
waits for every pod Running with one group per pod UID, then deletes the Deployment. Measured, from the
fake's call log (each replica names itself in ECI's user agent) and the Lease the new leader wrote:

* ``kill_to_acquire``: the kill -> the new leader's ``acquireTime`` (its first write: the Lease);
* ``last_write_to_acquire``: the old leader's last ECI write -> that ``acquireTime``;
* ``last_write_to_first_eci_write``: -> the new leader's first ECI write (after its reconcile).

    .venv/bin/python -m e2e.netns -- .venv/bin/python scripts/measure_failover.py [--kills 5] [--pods 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the e2e harness package (not installed: it is not in the wheel)

from e2e.harness import (  # noqa: E402
    DaemonProcess,
    Stand,
    fake_call_log,
    fake_groups,
    nginx_deployment,
    private_stand,
    set_faults,
    settled,
    wait_for,
)
from vkeci.core.times import parse  # noqa: E402

WRITES = {"CreateContainerGroup", "DeleteContainerGroup", "UpdateContainerGroup", "RestartContainerGroup"}


def summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2), "max": round(max(values), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--kill-after", type=int, default=20, help="kill once this many groups exist")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "failover.json"))
    args = parser.parse_args()
    with private_stand("vkeci-failover-", {"scheduling_delay_s": 0.05, "pending_delay_s": 0.1}) as stand:
        rounds = run_rounds(stand, args)
    keys = ("kill_to_acquire", "last_write_to_acquire", "last_write_to_first_eci_write")
    report = {"pods": args.pods, "rounds": rounds, **{k: summary([r[k] for r in rounds]) for k in keys}}
    print("| measure (s) | min | median | max |\n|---|---|---|---|")
    for key in keys:
        s = report[key]
        print(f"| {key} | {s['min']} | {s['median']} | {s['max']} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


def run_rounds(stand: Stand, args: argparse.Namespace) -> list[dict[str, Any]]:
    """``args.kills`` rounds of burst, kill and take-over on ``stand``; the figures of each."""
    cluster, fake, kube, work = stand.cluster, stand.fake, stand.kube, stand.work
    node = f"vk-failover-{uuid.uuid4().hex[:4]}"
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/default/leases/vkeci-{node}"
    started: list[DaemonProcess] = []

    def replica(identity: str) -> DaemonProcess:
        proc = DaemonProcess(
            cluster.kubeconfig, fake.endpoint, node, work / f"{identity}.log", env={"VKECI_LEADER_IDENTITY": identity}
        ).start()
        started.append(proc)
        return proc

    def holder() -> str:
        return str(kube.get(lease_path)["spec"].get("holderIdentity") or "")

    def holds(identity: str) -> bool:
        return holder() == identity

    def standing_by(proc: DaemonProcess) -> bool:
        return "waiting to lead" in proc.log_text()

    rounds: list[dict[str, Any]] = []
    try:
        cluster.kubectl("create", "namespace", "failover")
        leader = replica("r0")
        wait_for(lambda: kube.ready(node) == "True", 90, "node Ready")
        for i in range(args.kills):
            old, new = f"r{i}", f"r{i + 1}"
            standby = replica(new)
            wait_for(partial(standing_by, standby), 90, f"{new} standing by")
            set_faults(fake, {"latency": {"CreateContainerGroup": 0.3}})
            app = f"burst{i}"
            round_start = time.time()
            kube.create("failover", nginx_deployment(app, node, args.pods))
            wait_for(lambda: len(fake_groups(fake, node)) >= args.kill_after, 120, f"{args.kill_after} groups")
            killed_at = time.time()
            leader.kill()
            set_faults(fake, {"latency": {}})
            wait_for(partial(holds, new), 60, f"{new} holding the Lease")
            wait_for(partial(settled, kube, fake, "failover", node, app, args.pods), 300, f"{args.pods} pods Running")
            acquired = parse(kube.get(lease_path)["spec"]["acquireTime"])
            assert acquired is not None
            log = fake_call_log(fake)
            old_writes = [c["at"] for c in log if c["action"] in WRITES and c["user_agent"].endswith(f"vkeci/{old}")]
            new_writes = [c["at"] for c in log if c["action"] in WRITES and c["user_agent"].endswith(f"vkeci/{new}")]
            last_old, first_new, at = max(old_writes), min(w for w in new_writes if w > killed_at), acquired.timestamp()
            result = {
                "kill_to_acquire": at - killed_at,
                "last_write_to_acquire": at - last_old,
                "last_write_to_first_eci_write": first_new - last_old,
                "creates_before_kill": len([w for w in old_writes if round_start <= w <= killed_at]),
            }
            print(f"round {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()), file=sys.stderr)
            rounds.append(result)
            cluster.kubectl("delete", "deployment", "-n", "failover", app, "--wait=false")
            wait_for(lambda: not fake_groups(fake, node), 300, "the burst's groups deleted")
            leader = standby
    finally:
        for proc in started:
            proc.stop()
    return rounds


if __name__ == "__main__":
    sys.exit(main())
