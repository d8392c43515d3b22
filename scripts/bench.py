"""`make bench`: burst N pods onto the virtual node and measure the daemon (issue 7).

Brings up the local control plane (e2e/cluster.py, with raised API limits), and per run a fresh fake ECI
(`python -m fakes.eci`, Scheduling 1 s + Pending 2 s by default) and a fresh `vkeci run`, both as
subprocesses so the daemon's CPU seconds and peak RSS can be read from /proc. Then it creates N pods bound
to the virtual node, watches them through the Kubernetes API until all are Running, waits a steady-state
window, deletes them and waits until ECI holds none. Figures per run: see scripts/bench_report.py.

Runs are the product of ``--mode`` (fake unlimited / fake with ECI's documented per-minute limits),
``--workload`` (bare pods with spec.nodeName set, so only the daemon is measured; or a Deployment, which
adds the ReplicaSet controller and the scheduler) and ``--sizes``. Results accumulate in
``<out>/results.json`` (keyed mode/workload/N, newest wins) so runs can be made one at a time; the table in
BENCHMARKS.md is regenerated from all of them, and a PNG of pods Running over time is drawn per run when
matplotlib is installed (`pip install -e '.[bench]'`).

    make bench BENCH_ARGS="--sizes 100 --mode unlimited,limited --workload bare"
    make bench BENCH_ARGS="--sizes 5000 --mode unlimited --workload bare --steady 60"

``--nodes 1,2`` (issue 16) compares node counts instead: per count that many virtual nodes, one `vkeci run`
each, on one fake ECI (one account) and one namespace, the bare pods spread over the nodes round-robin by the
same creator threads; the counts run interleaved (``--rounds``, order alternating), the daemons' CPU summed
and their peak RSS kept one by one (scripts/bench_nodes_report.py); results in ``<out>/nodes/`` and the
table between the bench-nodes markers of BENCHMARKS.md:

    make bench BENCH_ARGS="--nodes 1,2 --sizes 5000 --rounds 2 --steady 0"

`make bench` runs it in the private network namespace of the tests (e2e/netns.py); the harness (e2e/harness.py)
starts the fake and the daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_nodes_report as nodes_report  # noqa: E402  (scripts/ is sys.path[0] when run as a script)
import bench_report as report  # noqa: E402

from e2e.cluster import Cluster  # noqa: E402
from e2e.harness import (  # noqa: E402
    daemon_env,
    fake_get,
    free_port,
    nginx_deployment,
    placement,
    running,
    start_fake_process,
    start_logged,
    stop_process,
)
from vkeci.clients.kube import KubeClient, KubeError, load_credentials, pod_path  # noqa: E402

ACCESS_KEY_ID = "bench-ak"
ACCESS_KEY_SECRET = "bench-secret-value"  # only the local fake accepts it
JSON = dict[str, Any]


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


# ---- control plane ---------------------------------------------------------------------------------------


class BenchCluster(Cluster):
    """The e2e control plane with limits raised for a 5,000-pod burst.

    The defaults (400/200 in-flight requests on the apiserver; 50 QPS for the scheduler and 20 for the
    controller-manager) would make the control plane, not the daemon, the bottleneck of the Deployment runs.
    """

    API_LIMITS = ("--max-requests-inflight=1000", "--max-mutating-requests-inflight=500")
    CLIENT_QPS, CLIENT_BURST = 500, 1000

    def _args(self, name: str) -> list[str]:
        args = super()._args(name)
        if name == "kube-apiserver":
            args += list(self.API_LIMITS)
        elif name == "kube-controller-manager":
            args += [f"--kube-api-qps={self.CLIENT_QPS}", f"--kube-api-burst={self.CLIENT_BURST}"]
        return args

    def _write_scheduler_config(self) -> None:
        super()._write_scheduler_config()
        path = self.dir / "scheduler.yaml"
        config = yaml.safe_load(path.read_text())
        config["clientConnection"].update(qps=self.CLIENT_QPS, burst=self.CLIENT_BURST)
        path.write_text(yaml.safe_dump(config, sort_keys=False))


# ---- processes -------------------------------------------------------------------------------------------


def start_fake(run_dir: Path, mode: str, scheduling: float, pending: float) -> tuple[subprocess.Popen[bytes], str]:
    """A fresh fake ECI for one run; returns the process and its endpoint host:port."""
    config: JSON = {"scheduling_delay_s": scheduling, "pending_delay_s": pending, "sandbox": "plain"}
    if mode == "limited":
        config["faults"] = {"rate_limits": {"enabled": True}}  # the documented per-minute defaults
    config_path = run_dir / "fake.yaml"
    config_path.write_text(yaml.safe_dump(config))
    args = ["--config", str(config_path)]
    return start_fake_process(args, ACCESS_KEY_ID, ACCESS_KEY_SECRET, run_dir / "fake-eci.log")


# The daemon's settings per fake mode. Unlimited measures the daemon's ceiling: ECI limits raised (as an account
# can have them raised by ticket), so the client-side ECI budget is off. Both modes raise the Kubernetes budget
# from the kubelet-like default of 50 QPS, which caps a burst at about 6 pods/s (each pod costs about 8 requests:
# see BENCHMARKS.md). --daemon-defaults runs the daemon with none of these.
MODE_ENV = {
    "unlimited": {"VKECI_ECI_RATE_LIMITS": "false", "VKECI_KUBE_QPS": "500", "VKECI_KUBE_BURST": "1000"},
    "limited": {"VKECI_KUBE_QPS": "500", "VKECI_KUBE_BURST": "1000"},
}


def start_daemon(
    run_dir: Path,
    kubeconfig: Path,
    endpoint: str,
    node: str,
    extra_env: dict[str, str],
    src: Path = ROOT,
    memory: bool = False,
    log_name: str = "vkeci.log",
) -> subprocess.Popen[bytes]:
    """`vkeci run` with the production defaults, except what a local fake needs and a node big enough;
    its output goes to ``run_dir/log_name``."""
    settings = {
        # Capacity the scheduler counts: 5,000 pods must fit on the one virtual node.
        "ECI_QUOTA_POD": "20000",
        "ECI_QUOTA_CPU": "100000",
        "ECI_QUOTA_MEMORY": "400Ti",
        "VKECI_LOG_LEVEL": "warning",  # info logs a few lines per pod: the bench measures the daemon, not its logs
        # A real cluster has DNS; the bench's has no kube-dns Service. Without it every ClusterFirst pod gets a
        # TranslationWarning event (as a kubelet posts MissingClusterDNS): 1 request and 1.4-1.8 ms of daemon CPU
        # per pod that a production node does not spend (BENCHMARKS.md #12). Nothing listens there: no pod runs.
        "CLUSTER_DNS": "10.96.0.10",
    }
    env = daemon_env(
        kubeconfig,
        endpoint,
        node,
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
        cluster_name="bench",
        kubelet_port=free_port(),
        extra={**settings, **extra_env},
    )
    if src != ROOT:  # another checkout of the daemon (before/after comparisons): its vkeci comes first
        env["PYTHONPATH"] = str(src)
    argv = [sys.executable, "-m", "vkeci", "run"]
    if memory:  # under tracemalloc: SIGUSR1 writes the top allocation sites
        argv = [sys.executable, str(ROOT / "scripts" / "bench_memory.py")]
        env["VKECI_TRACEMALLOC_OUT"] = str(run_dir / "memory.txt")
    # Each daemon its own health port: several serve at once with --nodes (the default 10248 would collide).
    argv.append(f"--health-port={free_port()}")
    return start_logged(argv, env, run_dir / log_name, cwd=src)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)


def machine_cpu(cluster: Cluster, pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of the daemon, the fake, every control-plane component and this bench process."""
    out = {"bench": sum(os.times()[:2])}
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        with contextlib.suppress(OSError, ValueError):
            pids[name] = int(cluster.pid_path(name).read_text().strip())
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = cpu_seconds(pid)
    return out


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of a live process from /proc/<pid>/status, in MB (VmHWM: peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return 0.0


# ---- Kubernetes side -------------------------------------------------------------------------------------


CONTAINER = {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}


def bare_pod(name: str, node: str) -> JSON:
    """A pod already bound to the node: no scheduler in the path."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {**placement(node), "nodeName": node, "containers": [CONTAINER]},
    }


class Tracker:
    """Watches the run's namespace: when each pod appeared, became Running, disappeared."""

    def __init__(self, kube: KubeClient, namespace: str, own: OwnRequests) -> None:
        self.kube = kube
        self.namespace = namespace
        self.own = own
        self.created: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.bound: dict[str, float] = {}  # pod -> when it first had a spec.nodeName (bare pods: at once)
        self.live: set[str] = set()
        self.seen_any = False
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = 0
        self.thread = threading.Thread(target=self._loop, name="tracker", daemon=True)

    def start(self) -> Tracker:
        self.thread.start()
        return self

    def _loop(self) -> None:
        rv = ""
        while not self.stop.is_set():
            try:
                if not rv:
                    self.own.add("LIST", "pods")
                    listed = self.kube.get(pod_path(self.namespace))
                    for pod in listed.get("items") or []:
                        self._see("ADDED", pod)
                    rv = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                params = {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": 1800}
                self.own.add("WATCH", "pods")
                for event in self.kube.watch(pod_path(self.namespace), params, read_timeout=60):
                    if self.stop.is_set():
                        return
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        rv = ""  # 410 Gone: relist
                        break
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    self._see(str(event.get("type")), obj)
            except KubeError:
                self.errors += 1
                rv = ""
                self.stop.wait(0.5)

    def _see(self, kind: str, pod: JSON) -> None:
        if kind == "BOOKMARK":
            return
        now = time.monotonic()
        name = str((pod.get("metadata") or {}).get("name"))
        with self.lock:
            if kind == "DELETED":
                self.live.discard(name)
                return
            self.seen_any = True
            self.live.add(name)
            self.created.setdefault(name, now)
            if name not in self.bound and (pod.get("spec") or {}).get("nodeName"):
                self.bound[name] = now
            if name not in self.running and running(pod):
                self.running[name] = now

    def counts(self) -> tuple[int, int, int]:
        """(created, running, live) pods right now."""
        with self.lock:
            return len(self.created), len(self.running), len(self.live)


class OwnRequests:
    """The bench's own API requests, so they can be subtracted from the apiserver's totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.totals: dict[tuple[str, str], float] = {}

    def add(self, verb: str, resource: str, n: int = 1) -> None:
        with self._lock:
            self.totals[(verb, resource)] = self.totals.get((verb, resource), 0.0) + n

    def snapshot(self) -> dict[tuple[str, str], float]:
        with self._lock:
            return dict(self.totals)


def apiserver_totals(kube: KubeClient) -> dict[tuple[str, str], float]:
    # GET /metrics itself is a non-resource request the counter does not include.
    return report.parse_request_totals(kube.request("GET", "/metrics").text)


def wait_events_settle(kube: KubeClient, quiet: float = 3.0, limit: float = 120.0) -> float:
    """Wait until no Event has been created for ``quiet`` seconds (at most ``limit``); the seconds waited.

    A daemon's events trail its statuses (vk-eci posts them from a queue): at 1,000 pods a fixed 2 s
    after the deletes left 1.2-1.7 of each pod's 4 events uncounted (BENCHMARKS.md, issue 18)."""
    started = time.monotonic()
    last, still_since = None, started
    while time.monotonic() - started < limit:
        now_count = apiserver_totals(kube).get(("POST", "events"), 0.0)
        if now_count != last:
            last, still_since = now_count, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def wait_node_ready(kube: KubeClient, node: str, daemon: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"bench: vkeci run exited with {daemon.returncode} before node {node} was Ready")
        with contextlib.suppress(KubeError):
            conditions = (kube.get(f"/api/v1/nodes/{node}").get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                return
        time.sleep(0.5)
    raise SystemExit(f"bench: node {node} not Ready within {timeout:.0f} s")


# ---- one run ---------------------------------------------------------------------------------------------


def run_one(
    cluster: Cluster,
    args: argparse.Namespace,
    mode: str,
    workload: str,
    n: int,
    out: Path,
    nodes: int = 1,
    rnd: int | None = None,
) -> JSON:
    """One burst: fresh fake + daemon, N pods up, steady window, all down. Returns the summarized result.

    ``nodes`` > 1 (``--nodes``): that many virtual nodes, one daemon each, all on the one fake (one ECI account)
    and the run's namespace, the pods spread over them by spec.nodeName; the daemons' CPU is summed, their
    peak RSS kept one by one. ``rnd``: the run is a round of the ``--nodes`` comparison (its own directory)."""
    name = f"{mode}-{workload}-{n}" + ("" if rnd is None else f"-{nodes}n-r{rnd}")
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    node_names = nodes_report.node_names(name, nodes)
    logs = ["vkeci.log"] if nodes == 1 else [f"vkeci-{node[-1]}.log" for node in node_names]
    for stale in ("fake-eci.log", *logs):
        (run_dir / stale).unlink(missing_ok=True)
    namespace = f"bench-{name}-{int(time.time())}"
    lifecycle = args.scheduling_delay + args.pending_delay
    raw = report.Raw(mode=mode, workload=workload, pods=n, lifecycle_delay_s=lifecycle)
    load_start = list(os.getloadavg())
    raw.notes.append(f"load average at start {' '.join(f'{x:.2f}' for x in load_start)}")
    creds = load_credentials(str(cluster.kubeconfig))
    kube = KubeClient(creds, timeout=60)
    own = OwnRequests()
    fake, endpoint = start_fake(run_dir, mode, args.scheduling_delay, args.pending_delay)
    daemons: dict[str, subprocess.Popen[bytes]] = {}  # process name (as machine_cpu reports it) -> daemon
    tracker: Tracker | None = None
    peaks: list[float] = []
    env = run_settings(args, mode)
    if mode == "limited" and nodes > 1:
        # ECI's per-minute limits are the account's: each daemon takes an equal share (README "High availability").
        env = {"VKECI_ECI_RATE_SHARE": f"{1 / nodes:.6f}", **env}
    try:
        for node, log in zip(node_names, logs, strict=True):
            key = "vkeci" if nodes == 1 else f"vkeci-{node[-1]}"
            src = Path(args.daemon_src)
            daemons[key] = start_daemon(run_dir, cluster.kubeconfig, endpoint, node, env, src, args.memory, log)
        for node, daemon in zip(node_names, daemons.values(), strict=True):
            wait_node_ready(kube, node, daemon, 60)
        kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        wait_default_sa(kube, namespace)
        tracker = Tracker(KubeClient(creds, timeout=60), namespace, own).start()
        time.sleep(1.0)  # let the watch open before the first create
        first = next(iter(daemons.values()))
        profiler = start_profiler(args, first.pid, run_dir)

        def snapshot(phase: str) -> None:
            raw.eci[phase] = fake_get(endpoint, "calls")
            raw.own_kube[phase] = own.snapshot()
            raw.kube[phase] = apiserver_totals(kube)
            raw.cpu_s[phase] = sum(cpu_seconds(d.pid) for d in daemons.values())
            raw.rss_mb[phase] = sum(memory_mb(d.pid, "VmRSS") for d in daemons.values())
            pids = {key: d.pid for key, d in daemons.items()}
            raw.proc_cpu_s[phase] = machine_cpu(cluster, {**pids, "fake-eci": fake.pid})

        snapshot("start")
        say(f"{name}: creating {n} pods ({workload}) on {', '.join(node_names)}")
        raw.t_start = time.monotonic()
        if workload == "bare":
            create_bare(kube, own, namespace, node_names, n, args.create_threads, raw)
        else:
            own.add("POST", "deployments")
            kube.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", nginx_deployment("bench", node_names[0], n))
        deadline = raw.t_start + args.timeout
        while time.monotonic() < deadline:
            created, ready, _ = tracker.counts()
            if created >= n and ready >= n:
                raw.t_all_running = time.monotonic()
                break
            exited = [key for key, d in daemons.items() if d.poll() is not None]
            if exited:
                raw.notes.append(f"{', '.join(exited)} (vkeci run) exited during the burst")
                break
            time.sleep(0.1)
        with tracker.lock:
            raw.created = dict(tracker.created)
            raw.running = dict(tracker.running)
            raw.bound = dict(tracker.bound)
        if workload == "deployment" and raw.created:
            raw.t_last_create = max(raw.created.values())
        if raw.t_all_running is None:
            raw.notes.append(f"only {len(raw.running)}/{n} Running after {args.timeout:.0f} s")
        say(
            f"{name}: {len(raw.running)}/{n} Running after "
            f"{(raw.t_all_running or time.monotonic()) - raw.t_start:.1f} s"
        )
        snapshot("running")
        stop_profiler(profiler)
        group_times(endpoint, raw)
        if args.memory:
            first.send_signal(signal.SIGUSR1)
            time.sleep(10)  # the snapshot is taken on the daemon's main thread, within a second or so
        if args.steady > 0 and raw.t_all_running is not None:
            say(f"{name}: steady state for {args.steady:.0f} s")
            t0 = time.monotonic()
            time.sleep(args.steady)
            raw.steady_s = time.monotonic() - t0
            snapshot("steady")
        say(f"{name}: deleting")
        raw.t_delete_start = time.monotonic()
        if workload == "bare":
            delete_bare(kube, own, namespace, sorted(raw.created), args.create_threads)
        else:
            own.add("DELETE", "deployments")
            kube.delete(
                f"/apis/apps/v1/namespaces/{namespace}/deployments/bench",
                {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"},
            )
        deadline = raw.t_delete_start + args.timeout
        while time.monotonic() < deadline and (raw.t_eci_empty is None or raw.t_pods_gone is None):
            if raw.t_eci_empty is None and fake_get(endpoint, "health")["groups"] == 0:
                raw.t_eci_empty = time.monotonic()
            if raw.t_pods_gone is None and tracker.counts()[2] == 0:
                raw.t_pods_gone = time.monotonic()
            time.sleep(0.1)
        if raw.t_eci_empty is None:
            raw.notes.append(f"ECI still held groups {args.timeout:.0f} s after the deletes")
        say(f"{name}: ECI empty after {(raw.t_eci_empty or time.monotonic()) - raw.t_delete_start:.1f} s")
        raw.notes.append(f"events settled {wait_events_settle(kube):.1f} s after ECI was empty")
        snapshot("end")
        peaks = [memory_mb(d.pid) for d in daemons.values()]
        raw.peak_rss_mb = max(peaks, default=0.0)
        raw.notes.append(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if tracker is not None:
            tracker.stop.set()
        for daemon in daemons.values():
            stop_process(daemon)
        stop_process(fake)
        for node in node_names:
            with contextlib.suppress(KubeError):
                kube.delete(f"/api/v1/nodes/{node}")
        delete_namespace(kube, namespace)
    result = report.summarize(raw)
    result["curve"] = report.running_curve(raw.created, raw.running, raw.t_start)
    result["curve"]["groups_created"] = sorted(round(t - raw.t_start, 3) for t in raw.group_created.values())
    result["settings"] = {
        "scheduling_delay_s": args.scheduling_delay,
        "pending_delay_s": args.pending_delay,
        "daemon_env": env,
        "create_threads": args.create_threads,
        "daemon_src": args.daemon_src,
    }
    whole_cpu = report.counter_delta(raw.proc_cpu_s.get("start", {}), raw.proc_cpu_s.get("end", {}))
    create_cpu = report.counter_delta(raw.proc_cpu_s.get("start", {}), raw.proc_cpu_s.get("running", {}))
    result.update(
        subject=nodes_report.subject(mode, nodes),
        nodes=nodes,
        round=rnd,
        load_start=load_start,
        daemon_peak_rss_mb_each=[round(p, 1) for p in peaks],
        apiserver_cpu_s_per_pod=round(whole_cpu.get("kube-apiserver", 0.0) / n, 5),
        fake_cpu_s_per_pod=round(create_cpu.get("fake-eci", 0.0) / n, 5),
    )
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    plot(result, run_dir / "running.png")
    return result


def delete_namespace(kube: KubeClient, namespace: str, timeout: float = 180) -> None:
    """Delete the run's namespace and wait until it is gone, so its cleanup is not counted in the next run."""
    with contextlib.suppress(KubeError):
        kube.delete(f"/api/v1/namespaces/{namespace}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kube.get(f"/api/v1/namespaces/{namespace}")
        except KubeError as err:
            if err.not_found:
                return
        time.sleep(0.5)
    say(f"namespace {namespace} still terminating after {timeout:.0f} s; the next run's figures may include it")


def group_times(endpoint: str, raw: report.Raw) -> None:
    """When the fake created each pod's group and when the group reached Running, on the bench's clock."""
    to_mono = time.monotonic() - time.time()  # the fake's clock is wall time (no virtual offset in the bench)
    for group in fake_get(endpoint, "groups")["groups"]:
        tags = {t.get("Key"): t.get("Value") for t in group.get("Tags") or []}
        pod, fake = str(tags.get("PodName")), group.get("Fake") or {}
        if fake.get("Created") is not None:
            raw.group_created[pod] = float(fake["Created"]) + to_mono
        if fake.get("RunningAt") is not None:
            raw.group_running[pod] = float(fake["RunningAt"]) + to_mono


def run_settings(args: argparse.Namespace, mode: str) -> dict[str, str]:
    """The run's daemon settings: the mode's (unless --daemon-defaults), then --daemon-env."""
    return {**({} if args.daemon_defaults else MODE_ENV[mode]), **dict(args.daemon_env)}


def wait_default_sa(kube: KubeClient, namespace: str, timeout: float = 30) -> None:
    """Pods are refused until the namespace's `default` ServiceAccount exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(KubeError):
            kube.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: namespace {namespace} has no default ServiceAccount after {timeout:.0f} s")


def _retrying(call: Any, attempts: int = 5) -> Any:
    # A loaded apiserver may answer 429/5xx to the burst itself; the bench must not lose pods to that.
    for attempt in range(attempts):
        try:
            return call()
        except KubeError as err:
            if attempt == attempts - 1 or not (err.status in (0, 429) or err.status >= 500):
                raise
            time.sleep(0.2 * 2**attempt)
    return None


def create_bare(
    kube: KubeClient, own: OwnRequests, namespace: str, nodes: Sequence[str], n: int, threads: int, raw: Any
) -> None:
    """POST n pods bound to ``nodes`` (round-robin) from ``threads`` threads; ``raw.t_last_create`` is when
    the last one returned."""
    path = pod_path(namespace)

    def one(i: int) -> None:
        own.add("POST", "pods")
        _retrying(lambda: kube.post(path, bare_pod(f"bench-{i:05d}", nodes_report.node_of(i, nodes))))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    raw.t_last_create = time.monotonic()


def delete_bare(kube: KubeClient, own: OwnRequests, namespace: str, names: list[str], threads: int) -> None:
    def one(name: str) -> None:
        own.add("DELETE", "pods")
        with contextlib.suppress(KubeError):
            _retrying(lambda: kube.delete(pod_path(namespace, name)))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, names))


# ---- profiling and plots ---------------------------------------------------------------------------------


def start_profiler(args: argparse.Namespace, pid: int, run_dir: Path) -> subprocess.Popen[bytes] | None:
    """py-spy on the daemon during the burst (``--profile``), written as a speedscope JSON and a summary."""
    if not args.profile:
        return None
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise SystemExit("bench: --profile needs py-spy: .venv/bin/pip install -e '.[bench]'")
    argv = [str(spy), "record", "--pid", str(pid), "--rate", "50", "--format", "raw"]
    argv += ["--output", str(run_dir / "profile.txt"), "--nonblocking", "--threads"]
    if args.profile == "wall":
        argv.append("--idle")  # waiting threads too: where a pod's time goes, not only the CPU's
    elif args.profile == "gil":
        argv.append("--gil")  # only the thread holding the GIL: where the daemon's Python CPU goes
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(run_dir / "py-spy.log", "wb"))


def stop_profiler(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def plot(result: JSON, path: Path) -> None:
    """Pods created and Running over time; skipped (with a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib not installed: no plot (pip install -e '.[bench]')")
        return
    curve = result["curve"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, times in (("created", curve["created"]), ("Running", curve["running"])):
        if times:
            ax.step([0.0, *times], list(range(len(times) + 1)), where="post", label=label)
    ax.set_xlabel("seconds since the first create")
    ax.set_ylabel("pods")
    ax.set_title(f"{result['pods']} pods, {result['workload']}, fake {result['mode']}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---- results and the Markdown table ----------------------------------------------------------------------


def machine() -> JSON:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def save(results_path: Path, result: JSON) -> dict[str, JSON]:
    """Merge one result into the accumulated results file (newest wins per mode/workload/N)."""
    data: JSON = json.loads(results_path.read_text()) if results_path.exists() else {}
    runs = data.setdefault("runs", {})
    runs[report.result_key(result)] = result
    data["machine"] = machine()
    results_path.write_text(json.dumps(data, indent=1))
    return dict(runs)


def write_markdown(path: Path, runs: dict[str, JSON]) -> None:
    table = report.markdown_table([{k: v for k, v in r.items() if k != "curve"} for r in runs.values()])
    write_table(path, table)


def write_table(path: Path, table: str, begin: str = report.TABLE_BEGIN, end: str = report.TABLE_END) -> None:
    """Put ``table`` between the markers of the Markdown file at ``path`` (created when missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(report.replace_table(text, table, begin, end))


@contextlib.contextmanager
def control_plane(out: Path) -> Iterator[Cluster]:
    cluster = BenchCluster(out / "cluster", progress=say, die_with_parent=True)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def daemon_env_pairs(parser: argparse.ArgumentParser, items: list[str]) -> list[tuple[str, str]]:
    """``--daemon-env KEY=VALUE`` arguments as pairs; a malformed one is a usage error naming it."""
    env = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--daemon-env {item!r}: expected KEY=VALUE")
        env.append((key, value))
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated pod counts")
    parser.add_argument(
        "--mode", help="unlimited and/or limited (ECI's per-minute limits); default both, with --nodes unlimited"
    )
    parser.add_argument("--workload", help="bare and/or deployment; default both, with --nodes bare (the only one)")
    parser.add_argument(
        "--nodes",
        help="compare node counts, e.g. 1,2: per count that many virtual nodes, one daemon each, on one fake ECI "
        "account, the bare pods spread over them; runs interleaved, results in <out>/nodes/, their own table",
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --nodes: rounds (the table shows medians)")
    parser.add_argument(
        "--limited-max", type=int, default=1000, help="skip limited-mode runs above this N (they take N/1000 min)"
    )
    parser.add_argument("--steady", type=float, default=60.0, help="steady-state window in seconds (0: skip)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on a phase after this many seconds")
    parser.add_argument("--scheduling-delay", type=float, default=1.0, help="fake ECI Scheduling seconds")
    parser.add_argument("--pending-delay", type=float, default=2.0, help="fake ECI Pending seconds")
    parser.add_argument("--create-threads", type=int, default=8, help="threads creating/deleting bare pods")
    parser.add_argument(
        "--daemon-env", action="append", default=[], metavar="KEY=VALUE", help="extra environment for vkeci run"
    )
    parser.add_argument(
        "--daemon-src",
        default=str(ROOT),
        help="run the daemon from this checkout (e.g. `git archive <commit> vkeci | tar -x -C DIR`) to compare",
    )
    parser.add_argument(
        "--memory", action="store_true", help="run the daemon under tracemalloc; top allocations to memory.txt"
    )
    parser.add_argument(
        "--daemon-defaults", action="store_true", help="run the daemon with its own defaults (no raised limits)"
    )
    parser.add_argument(
        "--profile",
        choices=("cpu", "wall", "gil"),
        help="py-spy the daemon during the burst into <out>/<run>/profile.txt (collapsed stacks per thread)",
    )
    parser.add_argument("--out", default=str(ROOT / ".bench"), help="results, logs, plots and the control plane")
    parser.add_argument("--markdown", default=str(ROOT / "BENCHMARKS.md"), help="file whose table is regenerated")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected comma-separated whole numbers such as 100,1000")
    try:
        args.node_counts = [int(k) for k in (args.nodes or "").split(",") if k.strip()]
    except ValueError:
        parser.error(f"--nodes {args.nodes!r}: expected comma-separated node counts such as 1,2")
    if args.nodes is not None:
        if not args.node_counts or min(args.node_counts) < 1 or max(args.node_counts) > 26:
            parser.error(f"--nodes {args.nodes!r}: expected node counts from 1 to 26")
        if args.workload not in (None, "bare"):
            parser.error("--nodes spreads bare pods by spec.nodeName: --workload bare only")
        if args.memory or args.profile:
            parser.error("--memory and --profile watch one daemon: not with --nodes")
        if args.rounds < 1:
            parser.error("--rounds: at least 1")
    nodes = args.nodes is not None
    args.modes = [m.strip() for m in (args.mode or ("unlimited" if nodes else "unlimited,limited")).split(",")]
    args.workloads = [w.strip() for w in (args.workload or ("bare" if nodes else "bare,deployment")).split(",")]
    args.modes, args.workloads = [m for m in args.modes if m], [w for w in args.workloads if w]
    if not set(args.modes) <= {"unlimited", "limited"}:
        parser.error(f"--mode {args.mode!r}: expected unlimited, limited or both")
    if not set(args.workloads) <= {"bare", "deployment"}:
        parser.error(f"--workload {args.workload!r}: expected bare, deployment or both")
    args.daemon_env = daemon_env_pairs(parser, args.daemon_env)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.node_counts:
        return compare_nodes(args, out)
    plan = [
        (mode, workload, n)
        for mode in args.modes
        for workload in args.workloads
        for n in args.sizes
        if not (mode == "limited" and n > args.limited_max)
    ]
    say("plan: " + ", ".join(f"{m}/{w}/{n}" for m, w, n in plan))
    with control_plane(out) as cluster:
        for mode, workload, n in plan:
            result = run_one(cluster, args, mode, workload, n, out)
            runs = save(out / "results.json", result)
            write_markdown(Path(args.markdown), runs)
            brief = {
                k: v for k, v in result.items() if k not in ("curve", "kube_requests_per_pod", "eci_calls_per_pod")
            }
            say(f"{mode}/{workload}/{n}: {json.dumps(brief)}")
    say(f"results in {out / 'results.json'}; table in {args.markdown}")
    return 0


def compare_nodes(args: argparse.Namespace, out: Path) -> int:
    """``--nodes``: every mode, size and node count once per round, interleaved on one control plane; the
    session's results (only this session's: one control plane) in <out>/nodes/results.json and their table."""
    runs = [
        (rnd, mode, n, k)
        for mode in args.modes
        for rnd, n, k in nodes_report.plan(args.node_counts, args.sizes, args.rounds)
        if not (mode == "limited" and n > args.limited_max)
    ]
    say("plan: " + ", ".join(f"r{rnd}/{mode}/{n}/{k} node(s)" for rnd, mode, n, k in runs))
    nodes_out = out / "nodes"
    nodes_out.mkdir(parents=True, exist_ok=True)
    results: list[JSON] = []
    with control_plane(out) as cluster:
        for rnd, mode, n, k in runs:
            result = run_one(cluster, args, mode, "bare", n, nodes_out, nodes=k, rnd=rnd)
            results.append({key: v for key, v in result.items() if key != "curve"})
            (nodes_out / "results.json").write_text(json.dumps({"machine": machine(), "runs": results}, indent=1))
            table = nodes_report.markdown(results)
            write_table(Path(args.markdown), table, nodes_report.TABLE_BEGIN, nodes_report.TABLE_END)
            brief = {key: result.get(key) for key in ("pods_per_s_running", "running_after_last_create_s", "latency_s")}
            brief["cpu_s_per_pod"] = (result.get("daemon_cpu_s_per_pod") or {}).get("create_phase")
            brief["rss_mb_each"] = result.get("daemon_peak_rss_mb_each")
            say(f"r{rnd}/{mode}/{n}/{k} node(s): {json.dumps(brief)}")
    say(f"results in {nodes_out / 'results.json'}; table in {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
