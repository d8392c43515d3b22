"""Helpers for the daemon e2e tests: run `vkeci run` as a real process, wait for conditions, read the fake.

The daemon is a separate process (so a test can kill -9 it), talking to the real API server through
the admin kubeconfig and to the fake ECI through the real SDK over HTTP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import requests

from e2e.netns import node_ip
from vkeci.clients.kube import KubeClient, KubeError, load_credentials

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (each daemon serves its kubelet API on its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


class DaemonProcess:
    """One `vkeci run` process with its own node name and log file."""

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
        # The kubelet API listens on the node address only (in the test namespace: 10.250.0.1).
        listen = f"--kubelet-listen={node_ip()}"
        # Each daemon its own health port (several run at once; the default 10248 would collide).
        self.health_port = free_port()
        health = f"--health-port={self.health_port}"
        self.args = [sys.executable, "-m", "vkeci", "run", *FAST_ARGS, listen, health, *extra_args]
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "ECI_REGION": "cn-hangzhou",
            "ECI_ACCESS_KEY": ACCESS_KEY_ID,
            "ECI_SECRET_KEY": ACCESS_KEY_SECRET,
            "ECI_ENDPOINT": eci_endpoint,
            "ECI_PROTOCOL": "http",
            "ECI_SECURITY_GROUP": "sg-fake",
            "ECI_VSWITCH": "vsw-fake-a,vsw-fake-b",
            "ECI_CLUSTER_NAME": cluster_name,
            "VKUBELET_NODE_NAME": node,
            "VKUBELET_NODE_IP": node_ip(),
            "KUBELET_PORT": str(free_port()),
            "VKECI_STATUS_INTERVAL": "0.5",
            "VKECI_RESYNC_INTERVAL": "30",
            "VKECI_WORKERS": "8",
            "VKECI_LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9: no cleanup at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Kube:
    """Test-side view of the cluster through the project's own REST client (no mocks)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = KubeClient(load_credentials(str(kubeconfig)), timeout=15)

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.client.get(path, params)

    def node(self, name: str) -> dict[str, Any]:
        return self.client.get(f"/api/v1/nodes/{name}")

    def ready(self, name: str) -> str:
        conditions = (self.node(name).get("status") or {}).get("conditions") or []
        return next((c["status"] for c in conditions if c["type"] == "Ready"), "")

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else None
        return list(self.client.get(f"/api/v1/namespaces/{namespace}/pods", params).get("items") or [])

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.client.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def create(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        api = obj["apiVersion"]
        base = "/api/v1" if api == "v1" else f"/apis/{api}"
        plural = obj["kind"].lower() + "s"
        return self.client.post(f"{base}/namespaces/{namespace}/{plural}", obj)

    def events(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        params = {"fieldSelector": f"involvedObject.name={pod}"}
        return list(self.client.get(f"/api/v1/namespaces/{namespace}/events", params).get("items") or [])

    def scale(self, namespace: str, deployment: str, replicas: int) -> None:
        self.client.patch(
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale",
            {"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )


def placement(node: str) -> dict[str, Any]:
    """Pod spec fragment that lands a pod on the virtual node (toleration + nodeSelector)."""
    return {
        "nodeSelector": {"type": "virtual-kubelet", "kubernetes.io/hostname": node},
        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
    }


def nginx_deployment(name: str, node: str, replicas: int) -> dict[str, Any]:
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
                    "containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}],
                },
            },
        },
    }


def running(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return status.get("phase") == "Running" and bool(status.get("podIP")) and ready


def tags_of(group: dict[str, Any]) -> dict[str, str]:
    return {str(t.get("Key")): str(t.get("Value", "")) for t in group.get("Tags") or []}


def fake_groups(fake: Any, node: str, *, live_only: bool = True) -> list[dict[str, Any]]:
    """The fake's groups tagged with ``node`` (by default only those not finished)."""
    groups = requests.get(fake.admin_url + "/groups", timeout=10).json()["groups"]
    mine = [g for g in groups if tags_of(g).get("NodeName") == node]
    if live_only:
        mine = [g for g in mine if g.get("Status") not in ("Succeeded", "Failed", "Expired", "ScheduleFailed")]
    return mine


def fake_calls(fake: Any) -> dict[str, Any]:
    return dict(requests.get(fake.admin_url + "/calls", timeout=10).json())


def set_faults(fake: Any, spec: dict[str, Any]) -> None:
    requests.put(fake.admin_url + "/faults", json=spec, timeout=10).raise_for_status()


def pod_manifest(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {**placement(node), **spec},
    }


def job_manifest(name: str, node: str, command: list[str], restart: str = "Never", backoff: int = 0) -> dict[str, Any]:
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
