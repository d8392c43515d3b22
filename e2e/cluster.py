"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Each component is a separate process (its own process group) started from the multi-call binary that
``e2e.build`` builds. Everything lives in one directory::

    DIR/kubeconfig             admin kubeconfig (client certificate in system:masters)
    DIR/pki/                   CA, apiserver serving cert, admin and kubelet-client certs, SA keys
    DIR/logs/<component>.log   output of each component (appended across restarts)
    DIR/<component>.pid        pid (= process group id) of each running component
    DIR/bin/                   links to the binaries: etcd, kube-apiserver, ..., kubectl (same version)
    DIR/cluster.json           ports in use, so `down`, `status` and `restart` work from another process

Command line (from the repository root)::

    python -m e2e.cluster up --dir .demo/cluster
    python -m e2e.cluster status --dir .demo/cluster
    python -m e2e.cluster restart kube-apiserver --dir .demo/cluster
    python -m e2e.cluster down --dir .demo/cluster
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
import urllib3
import yaml

from e2e.build import BINARY, COMPONENTS, K8S_VERSION, ensure_binary
from e2e.pki import FRONT_PROXY_CLIENT, Pki, ensure_pki

SERVERS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SERVICE_CIDR = "10.0.0.0/24"
# Short, so "the node goes NotReady once the virtual kubelet stops renewing its lease" is testable in seconds.
NODE_MONITOR_GRACE_PERIOD = "20s"
NODE_MONITOR_PERIOD = "5s"
# The HPA acts on metrics-server's figures every 5 s instead of 15 s, so a scale-up on CPU is testable in well
# under a minute (tests/e2e/test_metrics_server.py); idle when no HPA exists.
HPA_SYNC_PERIOD = "5s"
READY_TIMEOUT_S = {"etcd": 60.0, "kube-apiserver": 120.0, "kube-controller-manager": 90.0, "kube-scheduler": 60.0}
# kube-apiserver stops listening at once on SIGTERM but then waits up to --request-timeout (60s) for clients'
# open watches to close; its state is all in etcd, so after a few seconds it is simply killed.
STOP_TIMEOUT_S = {"etcd": 20.0, "kube-apiserver": 5.0, "kube-controller-manager": 20.0, "kube-scheduler": 20.0}
LOG_TAIL_LINES = 30
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


class ClusterError(RuntimeError):
    """A component failed to start or crashed; the message names it and quotes the tail of its log."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike CalledProcessError, str() includes what kubectl printed on stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


@dataclass
class Ports:
    """Loopback ports of the control plane, chosen free when a directory is first brought up."""

    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int


@dataclass(frozen=True)
class ComponentStatus:
    """What ``status`` knows about one component."""

    name: str
    state: str  # "running", "stopped" (never started or cleanly stopped) or "crashed" (pid file, no process)
    pid: int | None
    log_tail: str = ""


class Cluster:
    """A local control plane rooted at ``dir``; see the module docstring for the layout."""

    def __init__(
        self,
        dir: str | os.PathLike[str],
        progress: Callable[[str], None] | None = None,
        *,
        die_with_parent: bool = False,
    ) -> None:
        """``progress`` receives one-line messages (default: stderr). With ``die_with_parent`` the components
        this object starts are killed by the kernel when the calling process dies (a test run killed by a CI
        timeout leaves nothing behind); leave it off for a control plane that must outlive the command."""
        self.dir = Path(dir).resolve()
        self._say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._die_with_parent = die_with_parent
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- paths and addresses -------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (absolute paths to the PKI, so it works from any directory)."""
        return self.dir / "kubeconfig"

    @property
    def pki(self) -> Pki:
        """Paths of the CA, serving, client and service-account key files."""
        return Pki(self.dir / "pki")

    @property
    def ports(self) -> Ports:
        """Ports of the running (or last started) control plane."""
        state = self._load_state()
        if state is None:
            raise ClusterError(f"{self.dir} holds no control plane; run `python -m e2e.cluster up --dir {self.dir}`")
        return state

    @property
    def api_url(self) -> str:
        """``https://127.0.0.1:<port>`` of kube-apiserver."""
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def bin(self, name: str) -> Path:
        """Path of a binary by name: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl."""
        if name not in (*COMPONENTS, BINARY):
            raise ValueError(f"unknown binary {name!r}; expected one of {', '.join(COMPONENTS)}")
        return self.dir / "bin" / name

    def log_path(self, component: str) -> Path:
        """Log file of a component."""
        return self.dir / "logs" / f"{component}.log"

    def pid_path(self, component: str) -> Path:
        return self.dir / f"{component}.pid"

    # -- lifecycle -----------------------------------------------------------------------------------

    def up(self) -> Cluster:
        """Start every component that is not running and wait until all are ready; no-op when all are."""
        started = time.monotonic()
        binaries = ensure_binary(self._say)
        self._prepare(binaries)
        for name in SERVERS:
            status = self.component_status(name)
            if status.state == "crashed":
                self._say(
                    f"control plane: {name} had stopped unexpectedly; restarting it. Last log lines:\n{status.log_tail}"
                )
            if status.state != "running":
                self._start(name)
            if name in ("etcd", "kube-apiserver"):  # the others need these two, and may start together
                self._wait_ready(name)
        for name in ("kube-controller-manager", "kube-scheduler"):
            self._wait_ready(name)
        self._wait_for(
            "kube-controller-manager",
            "the `default` ServiceAccount (created by the controller-manager)",
            lambda: self._api_get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
        )
        self._say(
            f"control plane: up in {time.monotonic() - started:.1f}s at {self.api_url}; "
            f"export KUBECONFIG={self.kubeconfig}"
        )
        return self

    def down(self) -> None:
        """Stop exactly the processes this directory started (and their process groups), newest first."""
        for name in reversed(SERVERS):
            self._stop(name)

    def restart(self, component: str) -> None:
        """Stop one component and start it again on the same port with the same certificates."""
        if component not in SERVERS:
            raise ValueError(f"unknown component {component!r}; expected one of {', '.join(SERVERS)}")
        self._stop(component)
        self._start(component)
        self._wait_ready(component)

    def status(self) -> list[ComponentStatus]:
        """State of every component, in start order."""
        return [self.component_status(name) for name in SERVERS]

    def component_status(self, name: str) -> ComponentStatus:
        """State of one component; a crashed one comes with the tail of its log."""
        pid = self._read_pid(name)
        if pid is None:
            return ComponentStatus(name, "stopped", None)
        if self._alive(name, pid):
            return ComponentStatus(name, "running", pid)
        return ComponentStatus(name, "crashed", pid, self._log_tail(name))

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl (same version as the server) with the admin kubeconfig."""
        cmd = [str(self.bin("kubectl")), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    # -- preparation ---------------------------------------------------------------------------------

    def _prepare(self, binaries: Path) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        self._link_binaries(binaries)
        pki = ensure_pki(self.dir / "pki")
        ports = self._choose_ports()
        self._save_state(ports)
        self._write_kubeconfig(pki, ports)
        self._write_etcd_config(ports)
        self._write_scheduler_config()

    def _link_binaries(self, binaries: Path) -> None:
        bin_dir = self.dir / "bin"
        bin_dir.mkdir(exist_ok=True)
        for name in (*COMPONENTS, BINARY):
            link = bin_dir / name
            if link.is_symlink() and link.resolve() == (binaries / name).resolve():
                continue
            tmp = bin_dir / f".{name}.tmp"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(binaries / name)
            tmp.rename(link)

    def _choose_ports(self) -> Ports:
        # Reuse the previous ports so kubeconfigs handed out before a `down`/`up` stay valid; a port that
        # another program took meanwhile is replaced (only for components that are not running).
        old = self._load_state()
        fields = list(asdict(old).items()) if old else []
        keep: dict[str, int] = {}
        owners = {
            "etcd": "etcd",
            "etcd_peer": "etcd",
            "apiserver": "kube-apiserver",
            "controller_manager": "kube-controller-manager",
            "scheduler": "kube-scheduler",
        }
        for field, port in fields:
            if self.component_status(owners[field]).state == "running" or _port_free(port):
                keep[field] = port
        fresh = iter(_free_ports(5 - len(keep), avoid=set(keep.values())))
        return Ports(**{f: keep.get(f) or next(fresh) for f in owners})

    def _load_state(self) -> Ports | None:
        try:
            data = json.loads((self.dir / "cluster.json").read_text())
            return Ports(**data["ports"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_state(self, ports: Ports) -> None:
        state = {"version": K8S_VERSION, "ports": asdict(ports)}
        _write_atomic(self.dir / "cluster.json", json.dumps(state, indent=2) + "\n")

    def _write_kubeconfig(self, pki: Pki, ports: Ports) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "vkeci-e2e",
                    "cluster": {
                        "server": f"https://127.0.0.1:{ports.apiserver}",
                        "certificate-authority": str(pki.ca_crt),
                    },
                }
            ],
            "users": [
                {"name": "admin", "user": {"client-certificate": str(pki.admin_crt), "client-key": str(pki.admin_key)}}
            ],
            "contexts": [{"name": "vkeci-e2e", "context": {"cluster": "vkeci-e2e", "user": "admin"}}],
            "current-context": "vkeci-e2e",
        }
        _write_atomic(self.kubeconfig, yaml.safe_dump(config, sort_keys=False))

    def _write_etcd_config(self, ports: Ports) -> None:
        data_dir = self.dir / "etcd"
        data_dir.mkdir(mode=0o700, exist_ok=True)
        data_dir.chmod(0o700)  # etcd refuses a data dir other users can read
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        client = f"http://127.0.0.1:{ports.etcd}"
        config = {
            "name": "default",
            "data-dir": str(data_dir),
            "listen-client-urls": client,
            "advertise-client-urls": client,
            "listen-peer-urls": peer,
            "initial-advertise-peer-urls": peer,
            "initial-cluster": f"default={peer}",
            # Test data is disposable; skipping fsync keeps etcd from stalling the apiserver on a busy disk.
            "unsafe-no-fsync": True,
            "log-level": "warn",
        }
        _write_atomic(self.dir / "etcd.yaml", yaml.safe_dump(config, sort_keys=False))

    def _write_scheduler_config(self) -> None:
        config = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "leaderElection": {"leaderElect": False},
        }
        _write_atomic(self.dir / "scheduler.yaml", yaml.safe_dump(config, sort_keys=False))

    # -- command lines -------------------------------------------------------------------------------

    def _args(self, name: str) -> list[str]:
        ports, pki, d = self.ports, self.pki, self.dir
        verbosity = os.environ.get("VKECI_E2E_VERBOSITY", "1")
        if name == "etcd":
            return ["--config-file", str(d / "etcd.yaml")]
        if name == "kube-apiserver":
            return [
                f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
                "--etcd-prefix=/registry",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.apiserver}",
                # With no default route the apiserver cannot guess an address; a loopback advertise address is
                # only accepted with the endpoint reconciler off.
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pki.apiserver_crt}",
                f"--tls-private-key-file={pki.apiserver_key}",
                f"--client-ca-file={pki.ca_crt}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                # The apiserver dials kubelets (logs, exec, port-forward, metrics) with this client certificate.
                # It does not verify kubelet serving certificates (no --kubelet-certificate-authority), so a
                # virtual kubelet may serve a self-signed certificate.
                f"--kubelet-client-certificate={pki.kubelet_client_crt}",
                f"--kubelet-client-key={pki.kubelet_client_key}",
                "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
                # Request-header authentication (aggregated APIs); the controller-manager and scheduler read this
                # CA from the extension-apiserver-authentication ConfigMap and complain in a loop when it is absent.
                f"--requestheader-client-ca-file={pki.front_proxy_ca_crt}",
                f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki.front_proxy_client_crt}",
                f"--proxy-client-key-file={pki.front_proxy_client_key}",
                # Aggregated APIs (metrics-server, e2e.metrics_server) are dialled at their Service's endpoint
                # address: nothing here routes ClusterIPs (no kube-proxy). Webhooks here are called by URL.
                "--enable-aggregator-routing=true",
                f"--cert-dir={d / 'certs' / name}",
                f"--v={verbosity}",
            ]
        common = [
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--cert-dir={d / 'certs' / name}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            f"--v={verbosity}",
        ]
        if name == "kube-controller-manager":
            return [
                *common,
                f"--kubeconfig={self.kubeconfig}",
                f"--secure-port={ports.controller_manager}",
                "--leader-elect=false",
                "--controllers=*",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_crt}",
                # Signs CSRs, including kubernetes.io/kubelet-serving ones a virtual kubelet may file.
                f"--cluster-signing-cert-file={pki.ca_crt}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--node-monitor-grace-period={NODE_MONITOR_GRACE_PERIOD}",
                f"--node-monitor-period={NODE_MONITOR_PERIOD}",
                f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD}",
            ]
        if name == "kube-scheduler":
            return [*common, f"--config={d / 'scheduler.yaml'}", f"--secure-port={ports.scheduler}"]
        raise ValueError(f"unknown component {name!r}")

    # -- processes -----------------------------------------------------------------------------------

    def _start(self, name: str) -> None:
        proc = start_in_session(
            [str(self.bin(name)), *self._args(name)], self.dir, self.log_path(name), self._die_with_parent
        )
        self._children[name] = proc
        _write_atomic(self.pid_path(name), f"{proc.pid}\n")

    def _stop(self, name: str) -> None:
        pid = self._read_pid(name)
        if pid is not None and self._alive(name, pid):
            stop_group(pid, STOP_TIMEOUT_S[name], lambda: self._alive(name, pid))
        _signal_group_if_any(pid)  # stragglers of the group, if the leader went first
        self._children.pop(name, None)
        self.pid_path(name).unlink(missing_ok=True)

    def _read_pid(self, name: str) -> int | None:
        return read_pid(self.pid_path(name))

    def _alive(self, name: str, pid: int) -> bool:
        """True when ``pid`` is a live process of this directory's ``name`` (not a recycled pid, not a zombie)."""
        child = self._children.get(name)
        if child is not None and child.pid == pid:
            return child.poll() is None
        return process_of(pid, name, self.dir)

    def _log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with open(self.log_path(name), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(f.tell() - 64 * 1024, 0))
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- readiness -----------------------------------------------------------------------------------

    def _wait_ready(self, name: str) -> None:
        checks: dict[str, tuple[str, Callable[[], bool]]] = {
            "etcd": ("/health", self._etcd_healthy),
            "kube-apiserver": ("/readyz and the default namespace", self._apiserver_ready),
            "kube-controller-manager": ("/healthz", lambda: self._component_healthy(self.ports.controller_manager)),
            "kube-scheduler": ("/healthz", lambda: self._component_healthy(self.ports.scheduler)),
        }
        what, check = checks[name]
        self._wait_for(name, what, check)

    def _wait_for(self, name: str, what: str, check: Callable[[], bool]) -> None:
        timeout = READY_TIMEOUT_S[name]
        deadline = time.monotonic() + timeout
        while True:
            pid = self._read_pid(name)
            if pid is None or not self._alive(name, pid):
                raise ClusterError(
                    f"control plane: {name} exited while starting; log {self.log_path(name)} ends with:\n"
                    f"{self._log_tail(name)}"
                )
            try:
                if check():
                    return
            except (requests.RequestException, OSError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"control plane: {name} not ready ({what}) after {timeout:.0f}s; log {self.log_path(name)} "
                    f"ends with:\n{self._log_tail(name)}"
                )
            time.sleep(0.25)

    def _etcd_healthy(self) -> bool:
        r = requests.get(f"http://127.0.0.1:{self.ports.etcd}/health", timeout=2)
        return r.status_code == 200 and r.json().get("health") == "true"

    def _api_get(self, path: str) -> requests.Response:
        pki = self.pki
        return requests.get(
            self.api_url + path, cert=(str(pki.admin_crt), str(pki.admin_key)), verify=str(pki.ca_crt), timeout=5
        )

    def _apiserver_ready(self) -> bool:
        r = self._api_get("/readyz")
        return r.status_code == 200 and self._api_get("/api/v1/namespaces/default").status_code == 200

    @staticmethod
    def _component_healthy(port: int) -> bool:
        # The controller-manager and scheduler serve a self-signed certificate made at start-up; on loopback,
        # to a process this harness just started, checking it buys nothing.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            r = requests.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2)
        return r.status_code == 200


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int, avoid: set[int]) -> list[int]:
    # Hold every socket until all are chosen, so the kernel hands out distinct ports.
    sockets: list[socket.socket] = []
    try:
        ports: list[int] = []
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
        return ports
    finally:
        for s in sockets:
            s.close()


def kill_when_parent_dies() -> None:
    """``preexec_fn`` of a component: the kernel kills it when the process that started it dies."""
    # Runs in the child between fork and exec: PR_SET_PDEATHSIG survives exec, so the component gets SIGKILL
    # when the process that started it exits for any reason, SIGKILL included.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def start_in_session(args: list[str], cwd: Path, log_path: Path, die_with_parent: bool) -> subprocess.Popen[bytes]:
    """Start ``args`` in ``cwd``, its output appended to ``log_path`` after a line naming the command, in a
    session of its own: a stop can signal its whole process group, and a Ctrl-C aimed at the caller does
    not take it down halfway. With ``die_with_parent``, :func:`kill_when_parent_dies`."""
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(args)}\n".encode())
        log.flush()
        return subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=kill_when_parent_dies if die_with_parent else None,
        )


def read_pid(path: Path) -> int | None:
    """The pid a pid file holds, None without one."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def process_of(pid: int, name: str, dir: Path) -> bool:
    """True when ``pid`` is a live process (not a zombie) of the binary ``name`` whose command line names
    ``dir``: the process a pid file there recorded, not a recycled pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return bool(cmdline) and Path(os.fsdecode(cmdline[0])).name == name and str(dir) in os.fsdecode(b" ".join(cmdline))


def stop_group(pid: int, timeout: float, alive: Callable[[], bool]) -> None:
    """SIGTERM the process group ``pid`` leads (a process of :func:`start_in_session`), SIGKILL it if
    ``alive()`` still holds after ``timeout`` seconds, then wait up to 5 s more for it to go."""
    _signal_group(pid, signal.SIGTERM)
    if not _wait_gone(alive, timeout):
        _signal_group(pid, signal.SIGKILL)
        _wait_gone(alive, 5.0)


def _wait_gone(alive: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return True
        time.sleep(0.1)
    return not alive()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the leader's pid is the group id: each component got start_new_session
    except ProcessLookupError:
        pass


def _signal_group_if_any(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return
    _signal_group(pid, signal.SIGKILL)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _print_status(cluster: Cluster) -> int:
    statuses = cluster.status()
    for s in statuses:
        where = f" (pid {s.pid})" if s.pid else ""
        print(f"{s.name:<24} {s.state}{where}")
        if s.state == "crashed":
            print(f"  last lines of {cluster.log_path(s.name)}:")
            print("\n".join("    " + line for line in s.log_tail.splitlines()))
    if all(s.state == "running" for s in statuses):
        print(f"\napi: {cluster.api_url}\nkubeconfig: {cluster.kubeconfig}")
        return 0
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m e2e.cluster``."""
    parser = argparse.ArgumentParser(prog="python -m e2e.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "restart"))
    parser.add_argument("component", nargs="?", help=f"for restart: one of {', '.join(SERVERS)}")
    parser.add_argument("--dir", required=True, help="directory holding the cluster's state, e.g. .demo/cluster")
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir)
    try:
        if args.command == "up":
            cluster.up()
            print(
                f"kubeconfig: {cluster.kubeconfig}\ntry: {cluster.bin('kubectl')} --kubeconfig {cluster.kubeconfig} "
                "get --raw /readyz"
            )
        elif args.command == "down":
            cluster.down()
            print(f"control plane in {cluster.dir} stopped")
        elif args.command == "status":
            return _print_status(cluster)
        else:
            if not args.component:
                parser.error(f"restart needs a component: one of {', '.join(SERVERS)}")
            cluster.restart(args.component)
    except (ClusterError, ValueError, RuntimeError) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
