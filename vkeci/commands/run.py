"""`vkeci run`: its flags (defaults from ``vkeci.config``) and its entry point.

Building the parser imports nothing heavy: the daemon (SDK, kubernetes package) is imported only
when the command runs. The daemon itself is ``vkeci.daemon``.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
from typing import Any

from vkeci.config import (
    Config,
    ConfigError,
    HealthSettings,
    NodeSettings,
    PodSettings,
    default,
    flag_name,
    public_view,
)
from vkeci.log import fields, get_logger

log = get_logger("daemon")


# Every setting of ``config.SETTINGS`` but the secrets (a flag would show them in `ps`; environment or
# file only): name -> help. `run` and `check` take them all, `translate` those that shape a request.
CONFIG_FLAGS = (
    ("kubeconfig", "path of a kubeconfig; unset: ~/.kube/config, else in-cluster"),
    ("node_name", "name of the virtual node"),
    ("cluster_name", "cluster name written to the ECI tags"),
    ("region", "ECI region id, e.g. cn-hangzhou"),
    ("eci_endpoint", "ECI endpoint host[:port]; unset: the region's public endpoint"),
    ("eci_protocol", "https or http"),
    ("vswitches", "comma-separated vSwitch ids, one per zone"),
    ("security_group", "security group id"),
    ("schedule_strategy", "VSwitchOrdered or VSwitchRandom: how ECI picks among the vSwitches"),
    ("internal_ip", "the node's InternalIP, which the API server dials for logs/exec"),
    ("kubelet_port", "port of the kubelet API"),
    ("quota_cpu", "the node's CPU capacity"),
    ("quota_memory", "the node's memory capacity"),
    ("quota_pods", "the node's pod capacity"),
    ("taint_key", "key of the node's taint"),
    ("taint_value", "value of the node's taint"),
    ("taint_effect", "effect of the node's taint: NoSchedule, PreferNoSchedule or NoExecute"),
    ("log_level", "debug, info, warning or error"),
    ("log_format", "text or json"),
    ("status_interval", "seconds between ECI status polls"),
    ("resync_interval", "seconds between full resyncs of the pod cache"),
    ("workers", "number of ECI worker threads"),
    ("kube_qps", "Kubernetes API requests per second"),
    ("kube_burst", "Kubernetes API burst"),
    ("rate_limits", "true or false: client-side ECI rate limits"),
    ("cluster_dns", "comma-separated DNS server IPs for ClusterFirst pods; unset: the kube-system/kube-dns Service"),
    ("cluster_domain", "the cluster's DNS domain"),
    ("api_server", "host:port ECI pods reach the API server on; unset: the default/kubernetes endpoints"),
    ("zone_id", "default ECI zone id; annotations override"),
    ("resource_group_id", "default resource group id; annotations override"),
    ("tls_cert_file", "the kubelet API's serving certificate; unset: self-signed, or --tls-csr"),
    ("tls_key_file", "key of --tls-cert-file"),
    ("leader_elect", "true or false: elect one leader among the node's replicas"),
    ("leader_lease_duration", "seconds a standby waits after the last renewal it saw"),
    ("leader_renew_deadline", "seconds after its last renewal the leader stops writing"),
    ("leader_retry_period", "seconds between the leader's renewals"),
    ("leader_namespace", "namespace of the Lease vkeci-<node>; unset: the daemon's own, else default"),
    ("leader_identity", "this replica's name in the Lease; unset: <hostname>_<random>"),
    ("eci_rate_share", "this daemon's share of the account's ECI rate limits, e.g. 0.5 for 2 nodes"),
)


def config_help(name: str, text: str) -> str:
    """``text`` plus the setting's environment variables and default: `--help` shows where each value comes from."""
    from vkeci.config import REQUIRED, Config, setting

    value = default(Config, name)
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value).lower() if value is True else value
    where = [*(["required"] if name in (*REQUIRED, "internal_ip") else [])]
    where.append("env " + " or ".join(f"${env}" for env in setting(name).env))
    where += [f"default {shown}"] if shown not in ("", None) else []
    return f"{text} ({'; '.join(where)})"


def add_config_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """The configuration flags (all of them, or ``names``): each overrides the environment and the config file."""
    group = parser.add_argument_group("configuration (flags override the environment, which overrides --config)")
    group.add_argument("--config", dest="config_file", help="YAML config file (env $VKECI_CONFIG)")
    for name, help_text in CONFIG_FLAGS:
        if names is None or name in names:
            group.add_argument("--" + flag_name(name), dest=name, help=config_help(name, help_text))


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
    seconds("--ping-retry-interval", node, "ping_retry_interval", "seconds between ECI health pings while they fail")
    seconds(
        "--eci-unreachable-after",
        node,
        "eci_unreachable_after",
        "seconds of failing pings before ECI counts as unreachable (condition ECIReachable=False, NoSchedule taint)",
    )
    seconds(
        "--eci-refused-failures",
        node,
        "eci_refused_failures",
        "refused connections in a row after which ECI counts as unreachable at once",
        int,
    )
    seconds(
        "--transition-status-interval",
        pods,
        "transition_interval",
        "seconds between ECI status polls while a container group is starting or stopping",
    )
    seconds("--full-status-interval", pods, "full_status_interval", "seconds between full ECI listings")
    seconds(
        "--lost-check-interval",
        pods,
        "lost_check_interval",
        "seconds between looks for container groups deleted outside vk-eci",
    )
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
    health = parser.add_argument_group("health endpoint (/healthz, /readyz; plain HTTP, unauthenticated)")
    address, port = default(HealthSettings, "address"), default(HealthSettings, "port")
    health.add_argument("--health-address", default=address, help=f"address to serve it on (default {address})")
    health.add_argument("--health-port", type=int, default=port, help=f"its port; 0 turns it off (default {port})")
    kubelet = parser.add_argument_group("kubelet API (kubectl logs/exec/top)")
    kubelet.add_argument("--no-kubelet-api", action="store_true", help="do not serve the kubelet API")
    kubelet.add_argument(
        "--kubelet-listen", default="0.0.0.0", help="address to serve the kubelet API on (default 0.0.0.0)"
    )
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


def load_config(args: argparse.Namespace, also: Any = None) -> Config:
    """The Config from flags, environment and file (``also``: more checks, as ``config.load`` takes)."""
    from vkeci import config as config_module

    flags = {name: getattr(args, name, None) for name, _ in CONFIG_FLAGS if hasattr(args, name)}
    return config_module.load(flags=flags, config_file=getattr(args, "config_file", None), also=also)


# The garbage collector's thresholds for the daemon (CPython's are 700, 10, 10). The daemon holds every pod of
# its node (about 80 tracked objects each) and churns through short-lived request dicts; with the defaults a
# 5,000-pod burst ran 16 full collections of 0.15-0.46 s each (4.1 s with the GIL held; the status writes and
# creates all stop). With these, 1 full collection and 1.2 s of GC in all (BENCHMARKS.md, #9). Cycles still go
# in the young collections; only cycles that outlived two of them wait longer for a full one.
GC_THRESHOLDS = (50_000, 20, 10)


def stop_message(registered: bool) -> str:
    """The last line of a normal stop: what became of the Node (nothing, when it was never registered)."""
    if registered:
        return "stopped; the node stays registered and goes NotReady when its lease expires"
    return "stopped before the node was registered; nothing was left in the cluster"


def run(args: argparse.Namespace) -> int:
    """Entry point of `vkeci run`."""
    from vkeci import config as config_module
    from vkeci import log as logmod
    from vkeci.clients.kube import KubeError
    from vkeci.daemon import Daemon

    try:
        config = load_config(args, also=config_module.run_problems)
        logmod.setup(config.log_level, config.log_format)
        config_module.leader_settings(config, "", "")  # the timings, checked before anything starts
    except ConfigError as err:
        print(f"vkeci run: {err}", file=sys.stderr)
        return 2
    log.info("starting", extra=fields(**{k: v for k, v in public_view(config).items() if v not in ("", None, ())}))
    gc.set_threshold(*GC_THRESHOLDS)
    timings = NodeSettings(
        lease_duration=args.lease_duration,
        lease_interval=args.lease_interval,
        node_status_interval=args.node_status_interval,
        ping_interval=args.ping_interval,
        ping_retry_interval=args.ping_retry_interval,
        eci_unreachable_after=args.eci_unreachable_after,
        eci_refused_failures=args.eci_refused_failures,
        drain_timeout=args.drain_timeout,
    )
    options = PodSettings(
        status_interval=config.status_interval,
        transition_interval=args.transition_status_interval,
        full_status_interval=args.full_status_interval,
        lost_check_interval=args.lost_check_interval,
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
    health = None
    if args.health_port:
        try:
            health = daemon.start_health(HealthSettings(address=args.health_address, port=args.health_port))
        except OSError as err:  # a busy port must be explained, not stop the node
            log.error(
                "health endpoint not started (liveness and readiness probes will fail)",
                extra=fields(address=args.health_address, port=args.health_port, error=str(err)),
            )
    servers: list[Any] = []

    def start_kubelet_api() -> None:
        # On the leader only: the API server dials the node's InternalIP, which the leader points at itself.
        if args.no_kubelet_api:
            return
        try:
            servers.append(daemon.start_kubelet_api(args))
        except Exception as err:  # a TLS or port problem must be explained, not crash the node
            log.error("kubelet API not started (kubectl logs/exec will fail)", extra=fields(error=str(err)))

    daemon.start(stop, on_leading=start_kubelet_api)
    if args.decommission:
        code = daemon.decommission(stop, args.drain_timeout)
        stop.set()
        return code
    while not stop.wait(1.0):
        pass
    daemon.release()
    for server in servers:
        server.stop()
    if health is not None:
        health.stop()
    stats = daemon.stats()
    log.info("request totals", extra=fields(**{k: v for k, v in stats.items()}))
    if args.stats_file:
        with open(args.stats_file, "w") as out:
            json.dump(stats, out, indent=1, sort_keys=True)
    if daemon.lost_leadership:
        log.info("stopped after losing the leader lease (exit status 1: restart as a standby)")
        return 1
    log.info(stop_message(daemon.registered.is_set()))
    return 0
