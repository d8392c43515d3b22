"""`vkeci run`: the daemon that registers the virtual node and runs its pods on ECI.

Threads: heartbeat (lease every 10 s, node status every 60 s and on health change, on its own
Kubernetes session with priority in the rate limiter), ping (a cheap ECI call that decides
whether the node is honestly Ready), and the pod controller's watch / workers / status /
sweep threads. SIGTERM or SIGINT stops everything; the Node is kept (it goes NotReady after
its lease expires) unless ``--decommission`` is given.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from vkeci.config import Config, ConfigError, NodeSettings, PodSettings, default, public_view
from vkeci.log import fields, get_logger

if TYPE_CHECKING:
    from vkeci.controllers.ports import PodTranslator

log = get_logger("daemon")


CONFIG_FLAGS = (
    ("kubeconfig", "path of a kubeconfig (default: $KUBECONFIG, ~/.kube/config, else in-cluster)"),
    ("node_name", "name of the virtual node"),
    ("cluster_name", "cluster name written to the ECI tags"),
    ("region", "ECI region id, e.g. cn-hangzhou"),
    ("eci_endpoint", "ECI endpoint host[:port] (default: the region's public endpoint)"),
    ("eci_protocol", "https or http"),
    ("vswitches", "comma-separated vSwitch ids"),
    ("security_group", "security group id"),
    ("internal_ip", "the node's InternalIP, which the API server dials for logs/exec"),
    ("kubelet_port", "port of the kubelet API"),
    ("log_level", "debug, info, warning or error"),
    ("log_format", "text or json"),
    ("status_interval", "seconds between ECI status polls"),
    ("resync_interval", "seconds between full resyncs of the pod cache"),
    ("workers", "number of ECI worker threads"),
    ("kube_qps", "Kubernetes API requests per second"),
    ("kube_burst", "Kubernetes API burst"),
    ("rate_limits", "true/false: client-side ECI rate limits"),
)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `run` and `check`: every one overrides the environment and the config file."""
    parser.add_argument("--config", dest="config_file", help="YAML config file (default: $VKECI_CONFIG)")
    for name, help_text in CONFIG_FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, help=help_text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `vkeci run`."""
    add_config_arguments(parser)
    node, pods = NodeSettings, PodSettings  # every default below is theirs

    def seconds(flag: str, settings: type, name: str, text: str, kind: type = float) -> None:
        value = default(settings, name)
        parser.add_argument(flag, type=kind, default=value, help=f"{text} (default {value})")

    seconds("--lease-duration", node, "lease_duration", "lease duration in seconds", int)
    seconds("--lease-interval", node, "lease_interval", "seconds between lease renewals")
    seconds("--node-status-interval", node, "node_status_interval", "seconds between node status writes")
    seconds("--ping-interval", node, "ping_interval", "seconds between ECI health pings")
    seconds(
        "--transition-status-interval",
        pods,
        "transition_interval",
        "seconds between ECI status polls while a container group is starting or stopping",
    )
    seconds("--full-status-interval", pods, "full_status_interval", "seconds between full ECI listings")
    seconds("--sweep-interval", pods, "sweep_interval", "seconds between orphan sweeps")
    seconds(
        "--finished-retention",
        pods,
        "finished_retention",
        "seconds to keep a finished pod's container group (for kubectl logs) before deleting it",
    )
    seconds("--watch-timeout", pods, "watch_timeout", "server-side timeout of a pod watch", int)
    parser.add_argument(
        "--decommission",
        action="store_true",
        help="drain the node (delete its pods and their groups), then delete the Node and exit",
    )
    seconds("--drain-timeout", node, "drain_timeout", "seconds to wait for pods to go")
    parser.add_argument(
        "--eci-limit",
        action="append",
        default=[],
        metavar="ACTION=N",
        type=eci_limit,
        help="calls per minute allowed for one ECI action (repeatable), e.g. CreateContainerGroup=500; "
        "defaults are the documented account limits",
    )
    parser.add_argument("--stats-file", help="on exit, write request counts (Kubernetes and ECI) here as JSON")
    kubelet = parser.add_argument_group("kubelet API (kubectl logs/exec/top)")
    kubelet.add_argument("--no-kubelet-api", action="store_true", help="do not serve the kubelet API")
    kubelet.add_argument("--kubelet-listen", default="0.0.0.0", help="address to serve the kubelet API on")
    kubelet.add_argument("--tls-cert-file", help="serving certificate (default: self-signed, or --tls-csr)")
    kubelet.add_argument("--tls-key-file", help="key of --tls-cert-file")
    kubelet.add_argument(
        "--tls-csr", action="store_true", help="get the serving certificate from the cluster (kubelet-serving CSR)"
    )
    kubelet.add_argument("--tls-csr-approve", action="store_true", help="approve that CSR ourselves")
    kubelet.add_argument(
        "--client-ca-file", help="CA that signs the API server's client certificate (default: the kubeconfig's CA)"
    )


def eci_limit(text: str) -> tuple[str, int]:
    """``Action=N`` from the command line."""
    action, _, number = text.partition("=")
    if not action or not number.isdigit() or int(number) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected ACTION=N with N a positive number of calls per minute")
    return action.strip(), int(number)


def load_config(args: argparse.Namespace) -> Config:
    """The Config from flags, environment and file."""
    from vkeci import config as config_module

    flags = {name: getattr(args, name, None) for name, _ in CONFIG_FLAGS}
    return config_module.load(flags=flags, config_file=getattr(args, "config_file", None))


class Daemon:
    """Wires the clients and controllers together and runs them until ``stop`` is set."""

    def __init__(
        self,
        config: Config,
        timings: NodeSettings,
        options: PodSettings,
        *,
        translator: PodTranslator | None = None,
        eci_limits: dict[str, int] | None = None,
    ) -> None:
        from vkeci.clients.eci import EciClient
        from vkeci.clients.kube import KubeClient, load_credentials
        from vkeci.clients.ratelimit import kube_bucket
        from vkeci.controllers.lease import LeaseController
        from vkeci.controllers.node import NodeController
        from vkeci.controllers.pods import PodController
        from vkeci.controllers.translation import Translation
        from vkeci.core.node import Health

        self.config = config
        self.timings = timings
        credentials = load_credentials(config.kubeconfig)
        bucket = kube_bucket(config.kube_qps, config.kube_burst)
        self.kube = KubeClient(credentials, limiter=bucket)
        # Heartbeats get their own connection pool and the reserved part of the budget.
        self.heartbeat_kube = self.kube.with_priority(True)
        self.eci = EciClient.from_config(config, eci_limits)
        self.node = NodeController(self.heartbeat_kube, config)
        self.lease = LeaseController(self.heartbeat_kube, config.node_name, timings.lease_duration)
        self.translator = translator or Translation(config, self.kube)
        self.pods = PodController(self.kube, self.eci, config, self.translator, options)
        self.health = Health(ready=True)
        self._health_changed = threading.Event()
        self._last_status = time.monotonic()

    def ping(self) -> None:
        """Update the node's health from one ECI ping."""
        from vkeci.clients.eci import EciError
        from vkeci.core.node import Health

        try:
            self.eci.ping()
            health = Health(ready=True)
        except EciError as err:
            health = Health(ready=False, message=f"ECI endpoint {self.config.endpoint()} fails: {err}")
        except Exception as err:  # e.g. the credential chain failing: still an honest NotReady
            health = Health(ready=False, message=f"ECI cannot be called: {type(err).__name__}: {err}")
        if health != self.health:
            log.log(20 if health.ready else 30, "ECI health changed", extra=fields(ready=health.ready))
            self.health = health
            self._health_changed.set()

    def ping_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.timings.ping_interval):
            try:
                self.ping()
            except Exception:
                log.exception("ECI ping crashed, continuing")

    def register(self, stop: threading.Event) -> bool:
        """Register the node, retrying with backoff until it works or ``stop``."""
        from vkeci.clients.kube import KubeError

        for attempt in range(1000000):
            try:
                uid = self.node.register(self.health)
                log.info("node registered", extra=fields(node=self.config.node_name, uid=uid))
                return True
            except KubeError as err:
                log.warning("node registration failed, retrying", extra=fields(error=str(err)))
                if stop.wait(min(30.0, 0.5 * 2**attempt)):
                    return False
        return False

    def heartbeat_loop(self, stop: threading.Event) -> None:
        """Keep heartbeating until ``stop``, whatever goes wrong in one beat."""
        while not stop.is_set():
            try:
                self.beat(stop)
            except Exception:
                log.exception("heartbeat failed, continuing")
            self._health_changed.wait(self.timings.lease_interval)

    def beat(self, stop: threading.Event) -> None:
        """Renew the lease; patch node status when ``node_status_interval`` passed or health changed."""
        from vkeci.clients.kube import KubeError

        try:
            self.lease.renew(self.node.uid)
        except KubeError as err:
            log.warning("lease renewal failed", extra=fields(error=str(err)))
        due = time.monotonic() - self._last_status >= self.timings.node_status_interval
        if not (due or self._health_changed.is_set()):
            return
        self._health_changed.clear()
        try:
            self.node.patch_status(self.health)
            self._last_status = time.monotonic()
        except KubeError as err:
            if err.not_found:
                log.warning("node object was deleted, registering it again")
                self.register(stop)
            else:
                log.warning("node status update failed", extra=fields(error=str(err)))

    def start_kubelet_api(self, args: argparse.Namespace) -> Any:
        """Serve the kubelet HTTPS API (logs, exec, stats) on the configured kubelet port."""
        from vkeci.kubelet.auth import Auth
        from vkeci.kubelet.server import KubeletServer, ServerSettings
        from vkeci.kubelet.tls import CsrIssuer, FileIssuer, SelfSignedIssuer, ServingTls, load_client_ca

        addresses = [self.config.internal_ip or "127.0.0.1"]
        issuer: Any
        if args.tls_cert_file and args.tls_key_file:
            issuer = FileIssuer(args.tls_cert_file, args.tls_key_file)
        elif args.tls_csr:
            issuer = CsrIssuer(self.kube, self.config.node_name, addresses, approve=args.tls_csr_approve)
        else:
            issuer = SelfSignedIssuer(self.config.node_name, addresses)
        ca_file = args.client_ca_file or self._default_client_ca()
        tls = ServingTls(issuer, load_client_ca(ca_file) if ca_file else None)
        server = KubeletServer(
            node_name=self.config.node_name,
            pods=self.pods.cache,
            eci=self.eci,
            auth=Auth(self.kube, self.config.node_name),
            tls=tls,
            settings=ServerSettings(host=args.kubelet_listen, port=self.config.kubelet_port),
        )
        server.start()
        return server

    def _default_client_ca(self) -> str | None:
        verify = self.kube.credentials.verify
        if isinstance(verify, str):
            return verify
        in_cluster = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
        return in_cluster if os.path.exists(in_cluster) else None

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        """Ping, register, start heartbeats, then the pod controller (after its reconcile)."""
        self.ping()
        if not self.register(stop):
            return []
        threads = [
            threading.Thread(target=self.heartbeat_loop, args=(stop,), name="heartbeat", daemon=True),
            threading.Thread(target=self.ping_loop, args=(stop,), name="ping", daemon=True),
        ]
        for thread in threads:
            thread.start()
        threads += self.pods.start(stop)
        if not stop.is_set():
            log.info("daemon running", extra=fields(node=self.config.node_name))
        return threads

    def stats(self) -> dict[str, Any]:
        """Requests made so far: Kubernetes by verb and resource, ECI by action."""
        kube = dict(self.kube.counts + self.heartbeat_kube.counts)
        return {"kubernetes": kube, "eci": dict(self.eci.calls), "pods_seen": len(self.pods.pods)}

    def decommission(self, stop: threading.Event, timeout: float) -> int:
        """Cordon, delete every pod on the node, wait until they (and their groups) are gone, delete the Node."""
        from vkeci.clients.kube import MERGE, KubeError, pod_path
        from vkeci.core.translate import is_daemonset_pod

        self.kube.patch(self.node.path, {"spec": {"unschedulable": True}}, content_type=MERGE)
        deadline = time.monotonic() + timeout

        def draining() -> list[dict[str, Any]]:
            # DaemonSet pods never ran on ECI and would only be re-created (kubectl drain --ignore-daemonsets).
            return [p for p in self.pods.list_pods() if not is_daemonset_pod(p)]

        while not stop.is_set() and time.monotonic() < deadline:
            pods = draining()
            if not pods:
                break
            for pod in pods:
                meta = pod.get("metadata") or {}
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    self.kube.delete(pod_path(meta.get("namespace") or "default", str(meta.get("name"))))
                except KubeError as err:
                    if not err.not_found:
                        log.warning("drain: pod delete failed", extra=fields(pod=meta.get("name"), error=str(err)))
            stop.wait(2.0)
        left = draining()
        if left:
            log.error("drain timed out; the Node is kept", extra=fields(pods_left=len(left)))
            return 1
        self.pods.sweep()
        self.node.delete()
        log.info("node decommissioned", extra=fields(node=self.config.node_name))
        return 0


# The garbage collector's thresholds for the daemon (CPython's are 700, 10, 10). The daemon holds every pod of
# its node (about 80 tracked objects each) and churns through short-lived request dicts; with the defaults a
# 5,000-pod burst ran 16 full collections of 0.15-0.46 s each (4.1 s with the GIL held; the status writes and
# creates all stop). With these, 1 full collection and 1.2 s of GC in all (BENCHMARKS.md, #9). Cycles still go
# in the young collections; only cycles that outlived two of them wait longer for a full one.
GC_THRESHOLDS = (50_000, 20, 10)


def run(args: argparse.Namespace) -> int:
    """Entry point of `vkeci run`."""
    from vkeci import log as logmod
    from vkeci.clients.kube import KubeError

    try:
        config = load_config(args)
        logmod.setup(config.log_level, config.log_format)
        config.require("region")
    except ConfigError as err:
        print(f"vkeci run: {err}", file=sys.stderr)
        return 2
    log.info("starting", extra=fields(**{k: v for k, v in public_view(config).items() if v not in ("", None, ())}))
    gc.set_threshold(*GC_THRESHOLDS)
    timings = NodeSettings(
        args.lease_duration, args.lease_interval, args.node_status_interval, args.ping_interval, args.drain_timeout
    )
    options = PodSettings(
        status_interval=config.status_interval,
        transition_interval=args.transition_status_interval,
        full_status_interval=args.full_status_interval,
        resync_interval=config.resync_interval,
        sweep_interval=args.sweep_interval,
        watch_timeout=args.watch_timeout,
        workers=config.workers,
        finished_retention=args.finished_retention,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping", extra=fields(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon = Daemon(config, timings, options, eci_limits=dict(args.eci_limit))
    except KubeError as err:
        log.error("cannot reach Kubernetes", extra=fields(error=str(err)))
        return 1
    server = None
    if not args.no_kubelet_api:
        try:
            server = daemon.start_kubelet_api(args)
        except Exception as err:  # a TLS or port problem must be explained, not crash the node
            log.error("kubelet API not started (kubectl logs/exec will fail)", extra=fields(error=str(err)))
    daemon.start(stop)
    if args.decommission:
        code = daemon.decommission(stop, args.drain_timeout)
        stop.set()
        return code
    while not stop.wait(1.0):
        pass
    if server is not None:
        server.stop()
    stats = daemon.stats()
    log.info("request totals", extra=fields(**{k: v for k, v in stats.items()}))
    if args.stats_file:
        with open(args.stats_file, "w") as out:
            json.dump(stats, out, indent=1, sort_keys=True)
    log.info("stopped; the node stays registered and goes NotReady when its lease expires")
    return 0
