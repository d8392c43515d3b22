"""Benchmark of the fake ECI: requests per second through the real SDK, and cheap simulated groups.

Starts the fake in its own process (`python -m fakes.eci`, so client and server do not share a GIL), creates
`--groups` command-less container groups, then runs `--requests` signed SDK calls from `--threads` threads in
each of `--procs` client processes (a mix of DescribeContainerGroups by id, DescribeContainerGroupStatus and
DescribeContainerGroupEvents), and prints the figures plus the fake's CPU time per request (from /proc), which
is the fake's own capacity independent of the client. Exit code 1 if the rate is below `--target`.

    .venv/bin/python scripts/bench_fake.py --groups 2000 --requests 6000 --procs 2 --threads 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import models as open_api_models

ROOT = Path(__file__).resolve().parents[1]
AK, SK, REGION = "bench-ak", "bench-secret", "cn-hangzhou"


def client(endpoint: str, algorithm: str | None) -> Client:
    cfg = open_api_models.Config(access_key_id=AK, access_key_secret=SK, endpoint=endpoint, protocol="http")
    if algorithm:
        cfg.signature_algorithm = algorithm
    return Client(cfg)


def start_fake() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakes.eci", "--port", "0", "--access-key-id", AK, "--access-key-secret", SK],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ECI endpoint: http://"):
        proc.kill()
        raise SystemExit(f"fake did not start: {line!r}")
    return proc, line.strip().split("http://", 1)[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create_groups(endpoint: str, n: int, threads: int) -> tuple[list[str], float]:
    ids: list[str] = []
    lock = threading.Lock()
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def work(k: int, count: int) -> None:
        c = client(endpoint, None)
        for i in range(count):
            req = m.CreateContainerGroupRequest(
                region_id=REGION,
                container_group_name=f"bench-{k}-{i}",
                security_group_id="sg-fake",
                v_switch_id="vsw-fake-a,vsw-fake-b",
                client_token=f"bench-{k}-{i}",
                tag=[m.CreateContainerGroupRequestTag(key="ClusterName", value="bench")],
                container=[m.CreateContainerGroupRequestContainer(name="app", image="nginx", cpu=0.5, memory=1.0)],
            )
            gid = c.create_container_group(req).body.container_group_id
            with lock:
                ids.append(gid)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=work, args=(k, per[k])) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return ids, time.perf_counter() - t0


def hammer_processes(
    endpoint: str, ids: list[str], total: int, procs: int, threads: int, algorithm: str | None
) -> tuple[float, int]:
    """Run `hammer` in `procs` client processes at once (the SDK is CPU-heavy; one process is GIL-bound).

    The rate is measured from the first worker's start to the last one's end (wall clock), so process
    start-up (importing the SDK) is not counted.
    """
    import multiprocessing

    # spawn, not fork: the SDK keeps a process-wide connection pool, and forked children would share (and
    # garble) the parent's keep-alive sockets.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        results = pool.starmap(hammer, [(endpoint, ids, total // procs, threads, algorithm)] * procs)
    done = sum(r[0] for r in results)
    elapsed = max(r[3] for r in results) - min(r[2] for r in results)
    return done / elapsed, sum(r[1] for r in results)


def hammer(
    endpoint: str, ids: list[str], total: int, threads: int, algorithm: str | None
) -> tuple[int, int, float, float]:
    """`total` calls from `threads` threads; (calls made, errors, wall start, wall end)."""
    errors = [0]
    lock = threading.Lock()
    clients = [client(endpoint, algorithm) for _ in range(threads)]

    def work(k: int, count: int) -> None:
        c = clients[k]
        for i in range(count):
            gid = ids[(k * 7919 + i) % len(ids)]
            try:
                if i % 3 == 0:
                    c.describe_container_groups(
                        m.DescribeContainerGroupsRequest(region_id=REGION, container_group_ids=json.dumps([gid]))
                    )
                elif i % 3 == 1:
                    c.describe_container_group_status(
                        m.DescribeContainerGroupStatusRequest(region_id=REGION, container_group_ids=json.dumps([gid]))
                    )
                else:
                    c.describe_container_group_events(
                        m.DescribeContainerGroupEventsRequest(region_id=REGION, container_group_ids=json.dumps([gid]))
                    )
            except Exception as e:
                with lock:
                    errors[0] += 1
                    if errors[0] <= 3:
                        print(f"bench: call failed: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)

    per = total // threads
    t0 = time.time()
    ts = [threading.Thread(target=work, args=(k, per)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads, errors[0], t0, time.time()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=3, help="client threads per client process")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--target", type=float, default=1000.0, help="minimum requests/s (exit 1 below it)")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args()
    proc, endpoint = start_fake()
    try:
        rss0 = rss_mib(proc.pid)
        ids, secs = create_groups(endpoint, args.groups, args.threads)
        rss1 = rss_mib(proc.pid)
        cpu0 = cpu_seconds(proc.pid)
        rate_v3, err_v3 = hammer_processes(endpoint, ids, args.requests, args.procs, args.threads, None)
        cpu1 = cpu_seconds(proc.pid)
        rate_v2, err_v2 = hammer_processes(endpoint, ids, args.requests // 2, args.procs, args.threads, "v2")
        calls = requests.get(f"http://{endpoint}/_fake/calls", timeout=10).json()
        result = {
            "cpus": os.cpu_count(),
            "groups_created": len(ids),
            "create_per_s": round(len(ids) / secs, 1),
            "fake_rss_mib_before": round(rss0, 1),
            "fake_rss_mib_after_groups": round(rss1, 1),
            "kib_per_group": round((rss1 - rss0) * 1024 / max(1, len(ids)), 1),
            "describe_mix_req_per_s_v3": round(rate_v3, 1),
            "describe_mix_req_per_s_v2": round(rate_v2, 1),
            "fake_cpu_ms_per_request_v3": round((cpu1 - cpu0) * 1000 / args.requests, 3),
            "fake_capacity_req_per_cpu_s": round(args.requests / max(1e-9, cpu1 - cpu0)),
            "errors": err_v3 + err_v2,
            "fake_calls_total": calls["total"],
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:30} {v}")
    return 0 if min(result["describe_mix_req_per_s_v3"], result["describe_mix_req_per_s_v2"]) >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
