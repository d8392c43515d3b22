"""The e2e harness: run vk-eci against the local control plane and the fake ECI, for the e2e tests
(tests/e2e), the burst benchmark (scripts/bench.py) and the demo (scripts/demo.py).

- processes: :func:`start_logged`, :func:`stop_process`, :func:`start_fake_process` (``python -m fakes.eci``
  and the endpoint it prints), :func:`start_fake_in_process`, :func:`daemon_env` (what
  ``vkeci run`` needs to talk to a fake), and :class:`DaemonProcess`, the daemon of an e2e test (fast
  timings, killable);
- the cluster: :class:`Kube` (the project's own REST client, for assertions), :func:`wait_for`,
  :class:`ReadyNode` (a second Node that stays Ready) and :func:`private_stand` (a measuring script's own
  control plane and fake);
- manifests and predicates: :func:`placement`, :func:`pod_manifest`, :func:`nginx_deployment`,
  :func:`job_manifest`, :func:`running`, :func:`settled`;
- the fake's admin API: :func:`fake_groups`, :func:`fake_calls`, :func:`fake_call_log`, :func:`fake_get`,
  :func:`set_faults`, :func:`group_of_pod`, :func:`steer_usage`, :func:`stray_group`.

Network: everything runs on 127.0.0.1 or, inside the test namespace (e2e/netns.py), on the node address
10.250.0.1; :func:`e2e.netns.node_ip` is the one place that says which. Not shipped in the wheel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import requests

from e2e.cluster import Cluster
from e2e.netns import node_ip
from vkeci.clients.kube import KubeClient, KubeError, load_credentials

if TYPE_CHECKING:
    from fakes.eci.server import FakeECI

T = TypeVar("T")
JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[1]
# The e2e tests' keys; only the fake accepts them (the bench and the demo have their own).
ACCESS_KEY_ID = "AKID-e2e"
ACCESS_KEY_SECRET = "e2e-secret-value"
# Fast timings: status every 0.5 s, lease every 2 s, full listing every 3 s, sweep every 5 s.
FAST_ARGS = (
    "--lease-interval=2",
    "--node-status-interval=10",
    "--ping-interval=2",
    "--full-status-interval=3",
    "--sweep-interval=5",
    "--watch-timeout=60",
    "--finished-retention=3",
)
FINISHED = ("Succeeded", "Failed", "Expired", "ScheduleFailed")


# ---- processes -------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (each daemon serves its kubelet API on its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_logged(
    argv: Sequence[str], env: dict[str, str], log_path: Path, *, cwd: Path = ROOT, detach: bool = False
) -> subprocess.Popen[bytes]:
    """Start a subprocess appending its stdout and stderr to ``log_path``. ``detach``: in a session of
    its own, so that it outlives this process and its group can be signalled (the demo)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=detach
        )


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> int | None:
    """SIGTERM and wait; SIGKILL if it does not exit within ``timeout``. Returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def start_fake_process(
    args: Sequence[str],
    access_key_id: str,
    access_key_secret: str,
    log_path: Path,
    *,
    detach: bool = False,
    timeout: float = 30.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m fakes.eci --port 0 ...`` as a process of its own; returns it and the endpoint
    ``host:port`` it prints first. Raises SystemExit (naming the log) if it exits or stays silent."""
    start = log_path.stat().st_size if log_path.exists() else 0  # the log may hold earlier runs (the demo)
    argv = [sys.executable, "-m", "fakes.eci", "--port", "0", "--access-key-id", access_key_id, *args]
    env = {**os.environ, "FAKE_ECI_ACCESS_KEY_SECRET": access_key_secret, "PYTHONUNBUFFERED": "1"}
    proc = start_logged(argv, env, log_path, detach=detach)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace")[start:].splitlines():
            if line.startswith("ECI endpoint: "):
                return proc, line.split("://", 1)[1].strip()
        if proc.poll() is not None:
            raise SystemExit(f"the fake ECI exited at start (status {proc.returncode}); see {log_path}")
        time.sleep(0.1)
    stop_process(proc)
    raise SystemExit(f"the fake ECI did not print its endpoint within {timeout:.0f} s; see {log_path}")


def start_fake_in_process(config: JSON) -> FakeECI:
    """The fake ECI in this process on 127.0.0.1 (a free port), accepting the e2e keys, with ``config`` (its
    lifecycle delays, e.g. ``{"scheduling_delay_s": 0.05, "pending_delay_s": 0.1}``); the caller stops it."""
    # Imported here: the fake's code is loaded only where the fake runs in this process.
    from fakes.eci.server import FakeECI

    return FakeECI.start(
        "127.0.0.1", 0, access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, config=config
    )


def daemon_env(
    kubeconfig: Path,
    eci_endpoint: str,
    node: str,
    *,
    access_key_id: str,
    access_key_secret: str,
    cluster_name: str,
    kubelet_port: int | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a ``vkeci run`` that talks to the fake ECI at ``eci_endpoint`` over HTTP and
    registers ``node`` with the harness's node address. ``kubelet_port`` None: the daemon's default."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "ECI_REGION": "cn-hangzhou",
        "ECI_ACCESS_KEY": access_key_id,
        "ECI_SECRET_KEY": access_key_secret,
        "ECI_ENDPOINT": eci_endpoint,
        "ECI_PROTOCOL": "http",
        "ECI_SECURITY_GROUP": "sg-fake",
        "ECI_VSWITCH": "vsw-fake-a,vsw-fake-b",
        "ECI_CLUSTER_NAME": cluster_name,
        "VKUBELET_NODE_NAME": node,
        "VKUBELET_NODE_IP": node_ip(),
        "PYTHONUNBUFFERED": "1",
    }
    if kubelet_port is not None:
        env["KUBELET_PORT"] = str(kubelet_port)
    env.update(extra or {})
    return env


def kubelet_listen() -> str:
    """The daemon flag that serves the kubelet API on the node address only, not on every interface."""
    return f"--kubelet-listen={node_ip()}"


class DaemonProcess:
    """One `vkeci run` process of an e2e test, with its own node name and log file, fast timings and the
    e2e keys. A separate process so that a test can kill -9 it."""

    def __init__(
        self,
        kubeconfig: Path,
        eci_endpoint: str,
        node: str,
        log_path: Path,
        *,
        cluster_name: str = "e2e",
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.node = node
        self.log_path = log_path
        # Each daemon its own health port (several run at once; the default 10248 would collide).
        self.health_port = free_port()
        health = f"--health-port={self.health_port}"
        self.args = [sys.executable, "-m", "vkeci", "run", *FAST_ARGS, kubelet_listen(), health, *extra_args]
        fast = {
            "VKECI_STATUS_INTERVAL": "0.5",
            "VKECI_RESYNC_INTERVAL": "30",
            "VKECI_WORKERS": "8",
            "VKECI_LOG_LEVEL": "info",
        }
        self.env = daemon_env(
            kubeconfig,
            eci_endpoint,
            node,
            access_key_id=ACCESS_KEY_ID,
            access_key_secret=ACCESS_KEY_SECRET,
            cluster_name=cluster_name,
            kubelet_port=free_port(),
            extra={**fast, **(env or {})},
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        self.proc = start_logged(self.args, self.env, self.log_path)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        return stop_process(self.proc, timeout)

    def kill(self) -> None:
        """kill -9: no cleanup at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# ---- the cluster -----------------------------------------------------------------------------------------


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KubeError, requests.RequestException) as err:
            last = err
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


@dataclass(frozen=True)
class Stand:
    """What :func:`private_stand` runs: a scratch directory, the control plane in it, the fake, and
    :class:`Kube` on the control plane."""

    work: Path
    cluster: Cluster
    fake: FakeECI
    kube: Kube


@contextlib.contextmanager
def private_stand(prefix: str, fake_config: JSON) -> Iterator[Stand]:
    """A measuring script's own control plane (in a new scratch directory named ``prefix...``) and fake ECI
    (:func:`start_fake_in_process`); both stopped on exit, and the directory removed unless the body raised
    (its logs say why)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = Cluster(work / "cluster", progress=lambda m: print(m, file=sys.stderr))
    cluster.up()
    fake = start_fake_in_process(fake_config)
    try:
        yield Stand(work, cluster, fake, Kube(cluster.kubeconfig))
    finally:
        fake.stop()
        cluster.down()
    shutil.rmtree(work, ignore_errors=True)


class Kube:
    """Test-side view of the cluster through the project's own REST client (no mocks)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = KubeClient(load_credentials(str(kubeconfig)), timeout=15)

    def get(self, path: str, params: dict[str, Any] | None = None) -> JSON:
        return self.client.get(path, params)

    def node(self, name: str) -> JSON:
        return self.client.get(f"/api/v1/nodes/{name}")

    def ready(self, name: str) -> str:
        conditions = (self.node(name).get("status") or {}).get("conditions") or []
        return next((c["status"] for c in conditions if c["type"] == "Ready"), "")

    def pods(self, namespace: str, selector: str = "") -> list[JSON]:
        params = {"labelSelector": selector} if selector else None
        return list(self.client.get(f"/api/v1/namespaces/{namespace}/pods", params).get("items") or [])

    def pod(self, namespace: str, name: str) -> JSON:
        return self.client.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def create(self, namespace: str, obj: JSON) -> JSON:
        api = obj["apiVersion"]
        base = "/api/v1" if api == "v1" else f"/apis/{api}"
        plural = obj["kind"].lower() + "s"
        return self.client.post(f"{base}/namespaces/{namespace}/{plural}", obj)

    def events(self, namespace: str, pod: str) -> list[JSON]:
        params = {"fieldSelector": f"involvedObject.name={pod}"}
        return list(self.client.get(f"/api/v1/namespaces/{namespace}/events", params).get("items") or [])

    def scale(self, namespace: str, deployment: str, replicas: int) -> None:
        self.client.patch(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale",
            {"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )


class ReadyNode:
    """A Node object that stays Ready: the test registers it and renews its Lease in kube-node-lease (every
    2 s, with vk-eci's own LeaseController). With it the node lifecycle controller sees a zone that is not
    fully disrupted when the virtual node fails, so it evicts as it would in a real cluster (a zone whose
    only node is NotReady puts it in full-disruption mode, where it stops evicting)."""

    def __init__(self, kube: Kube, name: str, labels: dict[str, str] | None = None) -> None:
        self.kube = kube
        self.name = name
        self.labels = {"kubernetes.io/hostname": name, **(labels or {})}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ReadyNode:
        from vkeci.controllers.lease import LeaseController

        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "a stand-in node of the e2e test",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        node = self.kube.client.post(
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": self.name, "labels": self.labels},
                # Nothing of the test's may land on it.
                "spec": {"taints": [{"key": "e2e.vkeci/stand-in", "effect": "NoSchedule"}]},
                "status": {"conditions": [ready]},
            },
        )
        lease = LeaseController(self.kube.client, self.name, 40)
        uid = str(node["metadata"]["uid"])
        lease.renew(uid)

        def renew() -> None:
            while not self._stop.wait(2.0):
                try:
                    lease.renew(uid)
                except KubeError:
                    pass  # the next renewal retries; 40 s of lease leave room

        self._thread = threading.Thread(target=renew, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def ready(self) -> str:
        return self.kube.ready(self.name)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for path in (
            f"/api/v1/nodes/{self.name}",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}",
        ):
            try:
                self.kube.client.delete(path)
            except KubeError as err:
                if not err.not_found:
                    raise


# ---- manifests and predicates ----------------------------------------------------------------------------


def placement(node: str) -> JSON:
    """Pod spec fragment that lands a pod on the virtual node (toleration + nodeSelector)."""
    return {
        "nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/hostname": node},
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
    }


def pod_manifest(name: str, node: str, **spec: Any) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {**placement(node), **spec},
    }


def nginx_deployment(name: str, node: str, replicas: int, *, requests: dict[str, str] | None = None) -> JSON:
    """A Deployment of nginx:1.27 with label app=<name>, placed on the virtual node; ``requests``: its
    container's resource requests (e.g. ``{"cpu": "200m"}``, what an HPA's utilization is a share of)."""
    container: JSON = {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}
    if requests:
        container["resources"] = {"requests": requests}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    **placement(node),
                    "containers": [container],
                },
            },
        },
    }


def job_manifest(name: str, node: str, command: list[str], restart: str = "Never", backoff: int = 0) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff,
            "template": {
                "spec": {
                    **placement(node),
                    "restartPolicy": restart,
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": command}],
                }
            },
        },
    }


def running(pod: JSON) -> bool:
    """Running as `kubectl get pods` shows it: phase Running, an IP, Ready=True."""
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return status.get("phase") == "Running" and bool(status.get("podIP")) and ready


def settled(
    kube: Kube,
    fake: HasEndpoint | str,
    namespace: str,
    node: str,
    app: str | None,
    replicas: int,
    *,
    live_only: bool = True,
) -> tuple[list[JSON], list[JSON]] | None:
    """The pods and groups once ``replicas`` pods (of label app=``app``, or with None every pod of the
    namespace; pods being deleted do not count) are all Running with exactly one group of ``node`` each and
    no group of ``node`` is without a pod; None until then. The groups are the live ones, with
    ``live_only=False`` the finished ones as well."""
    selector = f"app={app}" if app else ""
    pods = [p for p in kube.pods(namespace, selector) if not p["metadata"].get("deletionTimestamp")]
    groups = fake_groups(fake, node, live_only=live_only)
    uids = Counter(tags_of(g)["UID"] for g in groups)
    ok = (
        len(pods) == replicas
        and all(running(p) for p in pods)
        and set(uids) == {p["metadata"]["uid"] for p in pods}
        and all(n == 1 for n in uids.values())
    )
    return (pods, groups) if ok else None


# ---- the fake's admin API --------------------------------------------------------------------------------


class HasEndpoint(Protocol):
    """A running fake (fakes.eci.server.FakeECI) seen from the harness."""

    @property
    def endpoint(self) -> str: ...


def _admin_url(fake: HasEndpoint | str) -> str:
    endpoint = fake if isinstance(fake, str) else fake.endpoint
    return f"http://{endpoint}/_fake"


def fake_get(fake: HasEndpoint | str, what: str, timeout: float = 30) -> JSON:
    """``GET /_fake/<what>`` of a fake (an object with ``endpoint`` or the endpoint ``host:port``)."""
    return dict(requests.get(f"{_admin_url(fake)}/{what}", timeout=timeout).json())


def tags_of(group: JSON) -> dict[str, str]:
    return {str(t.get("Key")): str(t.get("Value", "")) for t in group.get("Tags") or []}


def fake_groups(fake: HasEndpoint | str, node: str | None = None, *, live_only: bool = True) -> list[JSON]:
    """The fake's groups tagged with ``node`` (None: every node), by default only those not finished."""
    groups: list[JSON] = fake_get(fake, "groups", timeout=10)["groups"]
    mine = [g for g in groups if node is None or tags_of(g).get("NodeName") == node]
    if live_only:
        mine = [g for g in mine if g.get("Status") not in FINISHED]
    return mine


def fake_calls(fake: HasEndpoint | str) -> JSON:
    return fake_get(fake, "calls", timeout=10)


def fake_call_log(fake: HasEndpoint | str) -> list[JSON]:
    """Every call the fake answered, oldest first: ``at`` (unix seconds), ``action``, ``outcome``, ``user_agent``."""
    return list(fake_get(fake, "calls/log", timeout=30)["calls"])


def set_faults(fake: HasEndpoint | str, spec: JSON) -> None:
    requests.put(f"{_admin_url(fake)}/faults", json=spec, timeout=10).raise_for_status()


def group_of_pod(fake: HasEndpoint | str, node: str, pod: str) -> JSON:
    """The live group the fake holds for ``pod`` on ``node`` (by its PodName tag)."""
    found = [g for g in fake_groups(fake, node) if tags_of(g).get("PodName") == pod]
    if len(found) != 1:
        raise AssertionError(f"expected one live group for pod {pod} on {node}, found {len(found)}")
    return found[0]


def steer_usage(fake: HasEndpoint | str, group_id: str, *, cpu: float | None = None, memory: int | None = None) -> None:
    """From now on the fake reports ``cpu`` cores and ``memory`` bytes of working set for the group."""
    body = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    requests.put(f"{_admin_url(fake)}/groups/{group_id}/usage", json=body, timeout=10).raise_for_status()


def stray_group(fake: HasEndpoint | str, node: str, namespace: str, pod: str, uid: str, *, name: str) -> str:
    """A Running group ``name`` made behind vk-eci's back (``POST /_fake/groups``) with the tags vk-eci gives
    the group of pod ``namespace/pod`` (``uid``) on ``node`` in cluster e2e; returns its id."""
    tags = [
        {"Key": "ClusterName", "Value": "e2e"},
        {"Key": "NodeName", "Value": node},
        {"Key": "NameSpace", "Value": namespace},
        {"Key": "PodName", "Value": pod},
        {"Key": "UID", "Value": uid},
    ]
    answer = requests.post(
        f"{_admin_url(fake)}/groups", json={"ContainerGroupName": name, "Tag": tags, "Status": "Running"}, timeout=10
    )
    answer.raise_for_status()
    return str(answer.json()["ContainerGroupId"])
