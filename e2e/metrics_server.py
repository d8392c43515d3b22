"""metrics-server, the optional component of the local control plane: built from its Go module once and
cached outside the repository, run as a local process, registered as the ``v1beta1.metrics.k8s.io``
APIService (what ``kubectl top`` and the HorizontalPodAutoscaler read).

It is built from ``sigs.k8s.io/metrics-server`` through the Go module proxy, like the control plane
(``e2e.build``) and helm (``e2e.helm``):

    ~/.cache/vkeci/metrics-server-<version>/metrics-server   the binary (renamed into place after a good build)
    ~/.cache/vkeci/metrics-server-<version>/build.log        output of the build that made it

The same file lock as the control plane's makes concurrent callers wait for one build.
``python -m e2e.metrics_server`` builds it (or reports the cached binary); ``make metrics-server`` runs that.

How the API server reaches it (:class:`MetricsServer`): it listens on the node address of the test's network
namespace (10.250.0.1, ``e2e.netns``) with a serving certificate of the cluster CA; a selector-less Service
``kube-system/metrics-server`` with a hand-made EndpointSlice points there, and the API server runs with
``--enable-aggregator-routing`` (e2e.cluster), so the aggregator dials that endpoint instead of the Service's
ClusterIP (nothing here implements ClusterIPs: no kube-proxy). It authenticates the aggregator's requests by
the front-proxy (request-header) CA the API server publishes, and scrapes each node's kubelet API at its
InternalIP and status port, verifying the kubelet's serving certificate against ``kubelet_ca`` (or not at all
with ``kubelet_ca=None``: ``--kubelet-insecure-tls``).
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from e2e.build import BuildError, GoCommand
from e2e.cluster import Cluster, ClusterError, process_of, read_pid, start_in_session, stop_group
from e2e.netns import NODE_IP, node_ip
from e2e.pki import issue_certificate

# The Go module proxy serves v0.8.0 and v0.9.0 (`go list -m -versions sigs.k8s.io/metrics-server`, 2026-12-02);
# v0.8.0 is the approved release. It is built against client-go v0.33, which speaks the stable
# metrics.k8s.io/v1beta1, authentication and authorization APIs that the v1.35 API server still serves.
METRICS_SERVER_VERSION = "v0.8.0"
MODULE = "sigs.k8s.io/metrics-server"
APISERVICE = "v1beta1.metrics.k8s.io"
NAMESPACE = "kube-system"
SERVICE = "metrics-server"
# How often it scrapes every kubelet; 10 s is its minimum. The virtual kubelet refreshes ECI figures every
# 15 s (vkeci.kubelet.stats.MetricsCache) and ECI samples every 15 s, so scraping faster finds nothing new.
METRIC_RESOLUTION = "15s"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


# What metrics-server's own Makefile stamps: the version it reports (`metrics-server --version`, /version).
_LDFLAGS = f"-s -w -X k8s.io/client-go/pkg/version.gitVersion={METRICS_SERVER_VERSION}"
METRICS_SERVER = GoCommand(
    "metrics-server",
    MODULE,
    METRICS_SERVER_VERSION,
    "cmd/metrics-server",
    _LDFLAGS,
    needed_by="The `kubectl top` and HPA tests",
    verbose=True,
)


class MetricsServer:
    """One metrics-server process beside a running :class:`e2e.cluster.Cluster`, registered as the
    ``v1beta1.metrics.k8s.io`` APIService while it runs (see the module docstring for the wiring).

    Its files live in ``cluster.dir / "metrics-server"`` (serving certificate, ``metrics-server.log``), its
    pid in ``cluster.dir / "metrics-server.pid"`` beside the control plane's, so that ``down`` from another
    process (``python -m e2e.metrics_server down``) stops exactly it.
    Admin credentials (the cluster's kubeconfig) serve it for the API server, the delegated authentication
    and authorization, and the kubelets: a test stand, not a deployment (deploy/ has the real RBAC).
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        kubelet_ca: Path | None = None,
        host: str | None = None,
        progress: Callable[[str], None] | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.cluster = cluster
        self.kubelet_ca = kubelet_ca
        self.host = host or node_ip()
        self.dir = cluster.dir / "metrics-server"
        self.log_path = self.dir / "metrics-server.log"
        self.pid_path = cluster.dir / "metrics-server.pid"
        self._say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._die_with_parent = die_with_parent
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MetricsServer:
        """Build if needed, start the process, register the APIService; return once ``kubectl get --raw
        /apis/metrics.k8s.io/v1beta1`` answers (metrics themselves need two scrapes more)."""
        if ipaddress.ip_address(self.host).is_loopback:
            raise ClusterError(
                f"metrics-server: the API server cannot reach it on {self.host}: an EndpointSlice may not point "
                "at a loopback address. Run it inside the test network namespace, where the node address "
                f"{NODE_IP} exists (`python -m e2e.netns -- ...`, `make demo DEMO_NETNS=1`)."
            )
        binary = METRICS_SERVER.ensure(self._say)
        self.dir.mkdir(parents=True, exist_ok=True)
        crt, key = self.dir / "serving.crt", self.dir / "serving.key"
        # The aggregator checks the certificate for the Service's DNS name; the address is for a human's curl.
        issue_certificate(
            self.cluster.pki, crt, key, "metrics-server", server=True, sans=[f"{SERVICE}.{NAMESPACE}.svc", self.host]
        )
        self.port = _free_port(self.host)
        args = [str(binary), *self._args(crt, key)]
        self.proc = start_in_session(args, self.dir, self.log_path, self._die_with_parent)
        self.pid_path.write_text(f"{self.proc.pid}\n")
        try:
            self._register()
            self._wait_available()
        except BaseException:
            self.stop()
            raise
        self._say(f"metrics-server: serving {APISERVICE} from https://{self.host}:{self.port}; log: {self.log_path}")
        return self

    def stop(self) -> bool:
        """Unregister the APIService first (an unavailable aggregated API makes discovery, and with it
        namespace deletion and garbage collection, fail for every other client), then stop the process.
        Returns whether the API objects are gone (False when the API server could not be reached)."""
        unregistered = True
        for kind, name in (
            ("apiservice", APISERVICE),
            ("service", SERVICE),
            ("endpointslice", f"{SERVICE}-local"),
        ):
            namespace = [] if kind == "apiservice" else ["-n", NAMESPACE]
            deleted = self.cluster.kubectl(
                "delete",
                kind,
                name,
                *namespace,
                "--ignore-not-found",
                "--wait=false",
                "--request-timeout=10s",
                check=False,
            )
            unregistered = unregistered and deleted.returncode == 0
        pid = self.running_pid()
        if pid is not None:
            stop_group(pid, STOP_TIMEOUT_S, lambda: self.running_pid() == pid)
        self.pid_path.unlink(missing_ok=True)
        return unregistered

    def running_pid(self) -> int | None:
        """The pid of this directory's metrics-server if it runs (our child, or the one the pid file names)."""
        if self.proc is not None:
            return self.proc.pid if self.proc.poll() is None else None
        pid = read_pid(self.pid_path)
        return pid if pid is not None and process_of(pid, "metrics-server", self.dir) else None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as e:
            return f"(no log: {e})"

    def _args(self, crt: Path, key: Path) -> list[str]:
        kubeconfig = str(self.cluster.kubeconfig)
        kubelet_tls = (
            [f"--kubelet-certificate-authority={self.kubelet_ca}"] if self.kubelet_ca else ["--kubelet-insecure-tls"]
        )
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={self.host}",
            f"--secure-port={self.port}",
            f"--tls-cert-file={crt}",
            f"--tls-private-key-file={key}",
            f"--cert-dir={self.dir / 'certs'}",
            # A virtual kubelet has no hostname that resolves; its InternalIP (the node address) does, and
            # it serves the kubelet API on the port its Node status names, not necessarily 10250.
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port",
            *kubelet_tls,
            f"--metric-resolution={METRIC_RESOLUTION}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            f"--v={os.environ.get('VKECI_E2E_VERBOSITY', '1')}",
        ]

    def _register(self) -> None:
        ca_bundle = base64.b64encode(self.cluster.pki.ca_crt.read_bytes()).decode()
        objects: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": NAMESPACE},
                # No selector: the EndpointSlice below is made by hand, for a process outside the cluster.
                "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{SERVICE}-local",
                    "namespace": NAMESPACE,
                    "labels": {
                        "kubernetes.io/service-name": SERVICE,
                        "endpointslice.kubernetes.io/managed-by": "e2e.metrics-server",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [self.host], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"namespace": NAMESPACE, "name": SERVICE, "port": 443},
                    "caBundle": ca_bundle,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        ]
        manifest = yaml.safe_dump_all(objects, sort_keys=False)
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)

    def _wait_available(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        condition: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ClusterError(
                    f"metrics-server exited at start (status {self.proc.returncode}); log {self.log_path} ends "
                    f"with:\n{self.log_tail()}"
                )
            got = self.cluster.kubectl("get", "apiservice", APISERVICE, "-o", "json", check=False)
            if got.returncode == 0:
                conditions = json.loads(got.stdout).get("status", {}).get("conditions") or []
                condition = next((c for c in conditions if c.get("type") == "Available"), {})
                if condition.get("status") == "True":
                    return
            time.sleep(0.5)
        raise ClusterError(
            f"metrics-server: the API server does not see {APISERVICE} as Available after {READY_TIMEOUT_S:.0f}s "
            f"(condition: {condition.get('reason')}: {condition.get('message')}); log {self.log_path} ends "
            f"with:\n{self.log_tail()}"
        )


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m e2e.metrics_server``: build (default), or ``up``/``down`` beside a running
    control plane (``python -m e2e.cluster up --dir DIR``), inside the test network namespace."""
    parser = argparse.ArgumentParser(prog="python -m e2e.metrics_server", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("build", "up", "down"), default="build")
    parser.add_argument("--dir", help="for up/down: the control plane's directory, e.g. .demo/cluster")
    parser.add_argument(
        "--kubelet-ca", help="for up: CA of the kubelets' serving certificates (default: do not verify them)"
    )
    parser.add_argument("--print-path", action="store_true", help="print only the binary's path, build if needed")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            path = METRICS_SERVER.ensure()
            print(path if args.print_path else METRICS_SERVER.describe(path))
            return 0
        if not args.dir:
            parser.error(f"{args.command} needs --dir, the control plane's directory (e.g. .demo/cluster)")
        cluster = Cluster(args.dir)
        ms = MetricsServer(
            cluster, kubelet_ca=Path(args.kubelet_ca) if args.kubelet_ca else None, die_with_parent=False
        )
        if args.command == "up":
            if ms.running_pid() is not None:
                print(f"metrics-server already running beside {cluster.dir} (pid file {ms.pid_path})")
                return 0
            ms.start()
            print(f"try: {cluster.bin('kubectl')} --kubeconfig {cluster.kubeconfig} top pod -A")
        else:
            if ms.stop():
                print(f"metrics-server beside {cluster.dir} stopped, {APISERVICE} unregistered")
            else:
                print(
                    f"metrics-server beside {cluster.dir} stopped, but {APISERVICE} could not be unregistered (API "
                    "server unreachable from here, e.g. outside its network namespace); the next `up` registers it "
                    "again, a `down` that reaches the API server removes it"
                )
    except (BuildError, ClusterError, RuntimeError) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
