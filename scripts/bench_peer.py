"""`make bench-peer`: vk-eci against the Go virtual-kubelet and against a bare client, side by side (issue 18).

Three daemons serve a virtual node in turn, on ONE control plane (the `make bench` one, with its raised API
limits), runs interleaved (every round runs each daemon once per size, the order rotated per round):

- **vk-eci**: `vkeci run` against a fresh fake ECI with no lifecycle delays and no rate limits, its client-side
  ECI limits off and its Kubernetes QPS lifted (the peers' are lifted too);
- **peer**: virtual-kubelet v1.13.0 with its mock provider, with its client QPS and its global workqueue limit
  lifted and its pod map guarded (e2e/peer/virtual-kubelet-v1.13.0.patch; built by e2e/peer_build.py);
- **floor**: e2e/peer/floor, which only PATCHes each pod's status to Running and deletes it when asked.

Each run is `make bench`'s bare-pod burst: the same 8-thread creator posts N pods with spec.nodeName set,
the bench's watch times each to Running, then they are deleted and the run waits until they are gone (and,
for vk-eci, until the fake holds no group). Figures per run come from scripts/bench_report.py; the medians,
the table and the ratios from scripts/bench_peer_report.py, written into BENCHMARKS.md between the
``bench-peer`` markers. Every run's result.json and logs are kept in ``<out>/<daemon>-<N>-r<round>/``.

    .venv/bin/python scripts/bench_peer.py                             # 1,000 pods, 3 rounds
    .venv/bin/python scripts/bench_peer.py --sizes 1000,5000 --rounds 4
    .venv/bin/python scripts/bench_peer.py --sizes 200 --rounds 1 --daemons peer,floor
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402  (scripts/bench.py: the control plane, the creator, the watch, /proc readings)
import bench_peer_report as peer_report  # noqa: E402
import bench_report as report  # noqa: E402

from e2e import peer_build  # noqa: E402
from e2e.cluster import Cluster  # noqa: E402
from e2e.pki import issue_certificate  # noqa: E402
from vkeci.clients.kube import KubeClient, KubeError, load_credentials  # noqa: E402

JSON = bench.JSON
NODE_IP = "127.0.0.1"
# vk-eci's Kubernetes budget, lifted like the peers' (their client QPS is -1: no limit). At the bench's
# default of 500 QPS a 1,000-pod burst of about 7 requests per pod would wait on the token bucket.
VKECI_ENV = {**bench.MODE_ENV["unlimited"], "VKECI_KUBE_QPS": "100000", "VKECI_KUBE_BURST": "100000"}


def say(message: str) -> None:
    print(f"bench-peer: {message}", flush=True)


@dataclass
class Daemon:
    """One started daemon: the process measured, the ones that serve it (the fake ECI), the fake's address."""

    proc: subprocess.Popen[bytes]
    helpers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    fake_endpoint: str = ""

    def pids(self) -> dict[str, int]:
        return {"daemon": self.proc.pid, **{name: p.pid for name, p in self.helpers.items()}}

    def stop(self) -> None:
        bench.stop_process(self.proc)
        for helper in self.helpers.values():
            bench.stop_process(helper)


def start_vkeci(cluster: Cluster, run_dir: Path, node: str, args: argparse.Namespace) -> Daemon:
    fake, endpoint = bench.start_fake(run_dir, "unlimited", 0.0, 0.0)
    env = {**VKECI_ENV, **dict(args.daemon_env)}
    proc = bench.start_daemon(run_dir, cluster.kubeconfig, endpoint, node, env)
    return Daemon(proc, {"fake-eci": fake}, endpoint)


def start_peer(cluster: Cluster, run_dir: Path, node: str, binary: Path) -> Daemon:
    # The mock provider's default capacity is 20 pods; its HTTP server (logs, exec) needs a serving cert.
    config = run_dir / "mock.json"
    config.write_text(json.dumps({node: {"cpu": "100000", "memory": "400Ti", "pods": "20000"}}))
    crt, key = run_dir / "kubelet.crt", run_dir / "kubelet.key"
    issue_certificate(cluster.pki, crt, key, node, server=True, sans=[NODE_IP])
    env = {
        **os.environ,
        "APISERVER_CERT_LOCATION": str(crt),
        "APISERVER_KEY_LOCATION": str(key),
        "KUBELET_PORT": str(bench.free_port()),
        "VKUBELET_POD_IP": NODE_IP,
    }
    argv = [str(binary), "--provider", "mock", "--provider-config", str(config), "--nodename", node]
    argv += ["--kubeconfig", str(cluster.kubeconfig), "--log-level", "warn"]  # info logs lines per pod
    return Daemon(bench.start_logged(argv, env, run_dir / "daemon.log"))


def start_floor(cluster: Cluster, run_dir: Path, node: str, binary: Path) -> Daemon:
    argv = [str(binary), "--kubeconfig", str(cluster.kubeconfig), "--nodename", node, "--node-ip", NODE_IP]
    return Daemon(bench.start_logged(argv, dict(os.environ), run_dir / "daemon.log"))


def start(daemon: str, cluster: Cluster, run_dir: Path, node: str, args: argparse.Namespace) -> Daemon:
    if daemon == "vk-eci":
        return start_vkeci(cluster, run_dir, node, args)
    if daemon == "peer":
        return start_peer(cluster, run_dir, node, args.peer_binary)
    return start_floor(cluster, run_dir, node, args.floor_binary)


def run_one(cluster: Cluster, args: argparse.Namespace, daemon_name: str, n: int, rnd: int, out: Path) -> JSON:
    """One burst of ``n`` bare pods through ``daemon_name``: up, all Running, all deleted. The result JSON."""
    name = f"{daemon_name}-{n}-r{rnd}"
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("fake-eci.log", "vkeci.log", "daemon.log"):
        (run_dir / stale).unlink(missing_ok=True)
    node, namespace = f"bp-{name}", f"bp-{name}-{int(time.time())}"
    load_start = list(os.getloadavg())
    raw = report.Raw(mode=daemon_name, workload="bare", pods=n, lifecycle_delay_s=0.0)
    raw.notes.append(f"load average at start {' '.join(f'{x:.2f}' for x in load_start)}")
    creds = load_credentials(str(cluster.kubeconfig))
    kube = KubeClient(creds, timeout=60)
    own = bench.OwnRequests()
    tracker: bench.Tracker | None = None
    started = start(daemon_name, cluster, run_dir, node, args)
    proc = started.proc
    try:
        try:
            bench.wait_node_ready(kube, node, proc, 60)
        except SystemExit:
            raise SystemExit(f"bench-peer: {daemon_name} did not make node {node} Ready; see {run_dir}") from None
        kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        bench.wait_default_sa(kube, namespace)
        tracker = bench.Tracker(KubeClient(creds, timeout=60), namespace, own).start()
        time.sleep(1.0)  # let the watch open before the first create

        def snapshot(phase: str) -> None:
            raw.own_kube[phase] = own.snapshot()
            raw.kube[phase] = bench.apiserver_totals(kube)
            raw.cpu_s[phase] = bench.cpu_seconds(proc.pid)
            raw.rss_mb[phase] = bench.memory_mb(proc.pid, "VmRSS")
            raw.proc_cpu_s[phase] = bench.machine_cpu(cluster, started.pids())
            if started.fake_endpoint:
                raw.eci[phase] = bench.fake_get(started.fake_endpoint, "calls")

        snapshot("start")
        say(f"{name}: creating {n} pods")
        raw.t_start = time.monotonic()
        bench.create_bare(kube, own, namespace, [node], n, args.create_threads, raw)
        deadline = raw.t_start + args.timeout
        while time.monotonic() < deadline:
            created, ready, _ = tracker.counts()
            if created >= n and ready >= n:
                raw.t_all_running = time.monotonic()
                break
            if proc.poll() is not None:
                raw.notes.append(f"{daemon_name} exited with {proc.returncode} during the burst")
                break
            time.sleep(0.1)
        with tracker.lock:
            raw.created, raw.running, raw.bound = dict(tracker.created), dict(tracker.running), dict(tracker.bound)
        if raw.t_all_running is None:
            raw.notes.append(f"only {len(raw.running)}/{n} Running after {args.timeout:.0f} s")
        elapsed = (raw.t_all_running or time.monotonic()) - raw.t_start
        say(f"{name}: {len(raw.running)}/{n} Running after {elapsed:.1f} s")
        snapshot("running")
        if started.fake_endpoint:
            bench.group_times(started.fake_endpoint, raw)
        raw.t_delete_start = time.monotonic()
        bench.delete_bare(kube, own, namespace, sorted(raw.created), args.create_threads)
        deadline = raw.t_delete_start + args.timeout
        while time.monotonic() < deadline and (raw.t_eci_empty is None or raw.t_pods_gone is None):
            if raw.t_pods_gone is None and tracker.counts()[2] == 0:
                raw.t_pods_gone = time.monotonic()
            if raw.t_eci_empty is None:
                if not started.fake_endpoint:
                    # The peers' backends forget a pod when they delete it from the API: gone is gone.
                    raw.t_eci_empty = raw.t_pods_gone
                elif bench.fake_get(started.fake_endpoint, "health")["groups"] == 0:
                    raw.t_eci_empty = time.monotonic()
            time.sleep(0.1)
        if raw.t_pods_gone is None:
            raw.notes.append(f"pods still in the API {args.timeout:.0f} s after the deletes")
        say(f"{name}: all gone after {(raw.t_eci_empty or time.monotonic()) - raw.t_delete_start:.1f} s")
        # Events and the last status writes trail the deletes; count them in this run.
        settled = bench.wait_events_settle(kube)
        raw.notes.append(f"events settled {settled:.1f} s after all were gone")
        snapshot("end")
        raw.peak_rss_mb = bench.memory_mb(proc.pid)
    finally:
        if tracker is not None:
            tracker.stop.set()
        started.stop()
        with contextlib.suppress(KubeError):
            kube.delete(f"/api/v1/nodes/{node}")
        bench.delete_namespace(kube, namespace)
    result = report.summarize(raw)
    apiserver = report.counter_delta(raw.proc_cpu_s.get("start", {}), raw.proc_cpu_s.get("end", {}))
    fake = report.counter_delta(raw.proc_cpu_s.get("start", {}), raw.proc_cpu_s.get("running", {}))
    result.update(
        subject=daemon_name,
        round=rnd,
        load_start=load_start,
        apiserver_cpu_s_per_pod=round(apiserver.get("kube-apiserver", 0.0) / n, 5),
        fake_cpu_s_per_pod=round(fake.get("fake-eci", 0.0) / n, 5) if started.fake_endpoint else None,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        curve=report.running_curve(raw.created, raw.running, raw.t_start),
    )
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    return result


@contextlib.contextmanager
def control_plane(out: Path) -> Iterator[Cluster]:
    cluster = bench.BenchCluster(out / "cluster", progress=say, die_with_parent=True)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def write_markdown(path: Path, results: list[JSON]) -> None:
    table = peer_report.markdown(results)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(report.replace_table(text, table, peer_report.TABLE_BEGIN, peer_report.TABLE_END))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000", help="comma-separated pod counts (the issue's: 1000,5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows the median per size")
    parser.add_argument("--daemons", default=",".join(peer_report.SUBJECTS), help="vk-eci, peer and/or floor")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a phase after this many seconds")
    parser.add_argument("--create-threads", type=int, default=8, help="threads creating/deleting the pods")
    parser.add_argument(
        "--daemon-env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for vkeci run"
    )
    parser.add_argument("--out", default=str(ROOT / ".bench" / "peer"), help="results, logs and the control plane")
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite the table from <out>/results.json (no runs)"
    )
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"), help="file whose peer table is rewritten")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected comma-separated whole numbers such as 1000,5000")
    args.daemons = [d.strip() for d in args.daemons.split(",") if d.strip()]
    unknown = set(args.daemons) - set(peer_report.SUBJECTS)
    if unknown or not args.daemons:
        parser.error(f"--daemons {','.join(args.daemons)!r}: expected some of {', '.join(peer_report.SUBJECTS)}")
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    args.daemon_env = bench.daemon_env_pairs(parser, args.daemon_env)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        write_markdown(Path(args.markdown), json.loads((out / "results.json").read_text())["runs"])
        say(f"table in {args.markdown} rewritten from {out / 'results.json'}")
        return 0
    try:
        args.peer_binary = peer_build.ensure_peer(say) if "peer" in args.daemons else None
        args.floor_binary = peer_build.ensure_floor(say) if "floor" in args.daemons else None
    except peer_build.BuildError as err:
        print(err, file=sys.stderr)
        return 1
    runs = peer_report.plan(args.daemons, args.sizes, args.rounds)
    say("plan: " + ", ".join(f"r{r}/{n}/{d}" for r, n, d in runs))
    results: list[JSON] = []
    with control_plane(out) as cluster:
        for rnd, n, daemon_name in runs:
            result = run_one(cluster, args, daemon_name, n, rnd, out)
            results.append(result)
            # Rewritten after every run, from this session's runs only: one control plane, interleaved.
            (out / "results.json").write_text(json.dumps({"machine": bench.machine(), "runs": results}, indent=1))
            write_markdown(Path(args.markdown), results)
            brief = {k: result.get(k) for k in ("pods_per_s_running", "running_after_last_create_s", "latency_s")}
            brief["cpu_s_per_pod"] = (result.get("daemon_cpu_s_per_pod") or {}).get("create_phase")
            brief["requests_per_pod"] = peer_report.requests_per_pod(result)
            say(f"r{rnd}/{n}/{daemon_name}: {json.dumps(brief)}")
    say(f"results in {out / 'results.json'}; table in {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
