"""Daemon configuration: flags override the environment, the environment overrides an
optional YAML file, and that overrides the defaults.

The environment variable names are those of the original Go provider (``ECI_REGION``,
``ECI_VSWITCH``...) so that existing deployments keep working. Credentials may also come
from the standard Alibaba Cloud chain (``ALIBABA_CLOUD_ACCESS_KEY_ID`` and friends, an
STS token, a RAM role), resolved by ``alibabacloud-credentials``.

Every problem is reported as one line that names the setting, shows the bad value (never
for a secret) and says what is expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vkeci.core.quantity import QuantityError, parse_quantity


class ConfigError(ValueError):
    """Invalid configuration: one line per problem (``problems``), meant for the operator.

    With several problems the message lists them all, so one run shows everything to fix."""

    def __init__(self, *problems: str) -> None:
        self.problems = tuple(problems)
        if len(problems) == 1:
            text = problems[0]
        else:
            text = f"{len(problems)} problems in the configuration:" + "".join(f"\n  - {p}" for p in problems)
        super().__init__(text)


@dataclass(frozen=True)
class Secret:
    """A secret string that never shows itself in logs, reprs or exception messages."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The secret itself; call only where it is handed to a credential provider."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Setting:
    """How one configuration field is read: its environment names, YAML key and parser."""

    name: str
    env: tuple[str, ...]
    parse: Callable[[str], Any]
    expected: str
    secret: bool = False


def _text(value: str) -> str:
    return value.strip()


def _csv(value: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    return items


def _port(value: str) -> int:
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError(value)
    return port


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _quantity(value: str) -> str:
    if parse_quantity(value) <= 0:
        raise QuantityError(value)
    return value.strip()


def _seconds(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _share(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise ValueError(value)
    return number


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(value)
        return value

    return parse


def _ip(value: str) -> str:
    return str(ipaddress.ip_address(value.strip()))


def _ips(value: str) -> tuple[str, ...]:
    return tuple(_ip(item) for item in _csv(value))


def _host_port(value: str) -> str:
    host, sep, port = _endpoint(value).rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(value)
    return value.strip()


_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _node_name(value: str) -> str:
    if not _NODE_NAME.match(value):
        raise ValueError(value)
    return value


def _endpoint(value: str) -> str:
    # The SDK wants host[:port]; a scheme belongs in ECI_PROTOCOL.
    value = value.strip()
    if not value or "://" in value or "/" in value:
        raise ValueError(value)
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting("region", ("ECI_REGION",), _text, "an Alibaba Cloud region id such as cn-hangzhou"),
    Setting("access_key_id", ("ECI_ACCESS_KEY",), _text, "an AccessKey ID", secret=True),
    Setting("access_key_secret", ("ECI_SECRET_KEY",), _text, "an AccessKey secret", secret=True),
    Setting("security_token", ("ECI_SECURITY_TOKEN",), _text, "an STS security token", secret=True),
    Setting("security_group", ("ECI_SECURITY_GROUP",), _text, "a security group id such as sg-xxxx"),
    Setting("vswitches", ("ECI_VSWITCH",), _csv, "a comma-separated list of vSwitch ids (one per zone)"),
    Setting("cluster_name", ("ECI_CLUSTER_NAME",), _text, "a short name for this cluster"),
    Setting("quota_cpu", ("ECI_QUOTA_CPU",), _quantity, "a positive CPU quantity such as 1000 or 500"),
    Setting("quota_memory", ("ECI_QUOTA_MEMORY",), _quantity, "a positive memory quantity such as 4Ti"),
    Setting("quota_pods", ("ECI_QUOTA_POD",), _positive_int, "a positive whole number of pods"),
    Setting("kubelet_port", ("KUBELET_PORT",), _port, "a TCP port between 1 and 65535"),
    Setting("taint_key", ("VKUBELET_TAINT_KEY",), _text, "a taint key"),
    Setting("taint_value", ("VKUBELET_TAINT_VALUE",), _text, "a taint value"),
    Setting(
        "taint_effect",
        ("VKUBELET_TAINT_EFFECT",),
        _choice("NoSchedule", "PreferNoSchedule", "NoExecute"),
        "one of NoSchedule, PreferNoSchedule, NoExecute",
    ),
    Setting("node_name", ("DEFAULT_NODE_NAME", "VKUBELET_NODE_NAME"), _node_name, "a DNS-1123 node name"),
    Setting("eci_endpoint", ("ECI_ENDPOINT",), _endpoint, "host[:port] without a scheme, e.g. 127.0.0.1:8080"),
    Setting("eci_protocol", ("ECI_PROTOCOL",), _choice("https", "http"), "https or http"),
    Setting("kubeconfig", ("KUBECONFIG",), _text, "the path of a kubeconfig file"),
    Setting(
        "schedule_strategy",
        ("ECI_SCHEDULE_STRATEGY",),
        _choice("VSwitchOrdered", "VSwitchRandom"),
        "VSwitchOrdered or VSwitchRandom",
    ),
    # VKUBELET_NODE_IP (set by the admin) wins over VKUBELET_POD_IP (the downward API in the manifests).
    Setting("internal_ip", ("VKUBELET_NODE_IP", "VKUBELET_POD_IP"), _ip, "an IP address the API server can dial"),
    Setting(
        "log_level",
        ("VKECI_LOG_LEVEL", "LOG_LEVEL"),
        _choice("debug", "info", "warning", "error"),
        "debug, info, warning or error",
    ),
    Setting("log_format", ("VKECI_LOG_FORMAT",), _choice("text", "json"), "text or json"),
    Setting("status_interval", ("VKECI_STATUS_INTERVAL",), _seconds, "seconds between ECI status polls"),
    Setting("resync_interval", ("VKECI_RESYNC_INTERVAL",), _seconds, "seconds between full resyncs"),
    Setting("workers", ("VKECI_WORKERS",), _positive_int, "a positive number of ECI worker threads"),
    Setting("rate_limits", ("VKECI_ECI_RATE_LIMITS",), _bool, "true or false"),
    Setting("kube_qps", ("VKECI_KUBE_QPS",), _seconds, "a positive number of requests per second"),
    Setting("kube_burst", ("VKECI_KUBE_BURST",), _positive_int, "a positive number of requests"),
    Setting("zone_id", ("ECI_ZONE_ID",), _text, "a zone id such as cn-hangzhou-h"),
    Setting("resource_group_id", ("ECI_RESOURCE_GROUP_ID",), _text, "a resource group id such as rg-xxxx"),
    Setting(
        "cluster_dns",
        ("CLUSTER_DNS",),
        _ips,
        "a comma-separated list of DNS server IP addresses (the kube-dns Service's ClusterIP), e.g. 10.96.0.10",
    ),
    Setting("cluster_domain", ("CLUSTER_DOMAIN",), _text, "the cluster's DNS domain, e.g. cluster.local"),
    # The Go provider's and azure-aci's names for the kubelet API's serving certificate.
    Setting("tls_cert_file", ("APISERVER_CERT_LOCATION",), _text, "the path of a PEM serving certificate"),
    Setting("tls_key_file", ("APISERVER_KEY_LOCATION",), _text, "the path of the PEM key of tls_cert_file"),
    Setting(
        "api_server",
        ("API_SERVER",),
        _host_port,
        "host:port of the API server as ECI pods reach it, with the port and no scheme, e.g. 192.168.0.10:6443",
    ),
    # Leader election among the replicas of one node (controllers/leader.py; README "High availability").
    Setting("leader_elect", ("VKECI_LEADER_ELECT",), _bool, "true or false"),
    Setting("leader_lease_duration", ("VKECI_LEADER_LEASE_DURATION",), _seconds, "seconds a standby waits"),
    Setting("leader_renew_deadline", ("VKECI_LEADER_RENEW_DEADLINE",), _seconds, "seconds the leader may go unrenewed"),
    Setting("leader_retry_period", ("VKECI_LEADER_RETRY_PERIOD",), _seconds, "seconds between lease attempts"),
    Setting(
        "leader_namespace",
        ("VKECI_LEADER_NAMESPACE", "POD_NAMESPACE"),
        _text,
        "the namespace of the leader Lease vkeci-<node> (the daemon's own)",
    ),
    Setting("leader_identity", ("VKECI_LEADER_IDENTITY",), _text, "a name unique to this replica"),
    Setting(
        "eci_rate_share",
        ("VKECI_ECI_RATE_SHARE",),
        _share,
        "a fraction in (0, 1]: this daemon's part of the account's ECI rate limits, e.g. 0.5 for 2 nodes",
    ),
)
_BY_NAME = {setting.name: setting for setting in SETTINGS}


def setting(name: str) -> Setting:
    """The Setting called ``name`` (its environment variables, what it expects)."""
    return _BY_NAME[name]


SECRET_FIELDS = frozenset(setting.name for setting in SETTINGS if setting.secret)


@dataclass
class PodSettings:
    """Timings and sizes of the pod controllers; the defaults suit production, tests shorten them.

    ``vkeci run``'s flags take their defaults from here (``commands/run.py``)."""

    status_interval: float = 5.0
    # While a group is starting, stopping or restarting, poll this often: pod start latency is poll
    # latency. Cheap, because a poll describes only groups whose listing changed (10,000/min budget
    # for the listings themselves).
    transition_interval: float = 0.25
    full_status_interval: float = 60.0
    resync_interval: float = 300.0
    sweep_interval: float = 300.0
    watch_timeout: int = 300
    workers: int = 16
    # Threads writing the statuses/events of one poll: a burst of N groups turning Running at once must
    # not be written one after the other.
    status_writers: int = 8
    # Described groups waiting for a status writer, at most: the backlog is described as writes end,
    # so a status is never written from a describe that sat in a queue for seconds.
    status_in_flight: int = 100
    # Threads posting events (about 4 per pod). Events trail the statuses they describe and never hold up
    # the next status poll.
    event_writers: int = 4
    # A group we just created and have not seen listed or described yet is not declared lost before
    # this many seconds (eventual consistency: a new group may be missing from listings for a while).
    lost_grace: float = 30.0
    # Every tracked group is looked for in a full status listing this often, so a group deleted outside
    # vk-eci is noticed within about this (issue 12: within 15 s). One DescribeContainerGroupStatus per
    # 200 groups (25 calls per check at 5,000 pods, of a 10,000/min budget).
    lost_check_interval: float = 10.0
    delete_poll: float = 1.0
    # Finished groups are kept this long after the pod finished, so logs stay readable.
    finished_retention: float = 600.0
    max_backoff: float = 60.0
    missing_retry: float = 10.0  # longest wait before retrying a pod whose referenced objects are missing
    # A pod whose ECI call ECI refused for good (bad parameter, quota, no stock: not ``EciError.transient``)
    # is not tried again sooner than this: the answer will not change within 200 ms, and the pod's
    # ProviderFailed status must stay up long enough to be seen.
    refused_retry: float = 5.0
    # One page of a paged ECI listing (20 groups, 200 statuses) is tried this many times, ``page_backoff``
    # seconds apart doubling up to 8 s, before the listing gives up for now; the next attempt resumes at
    # that page's NextToken. At 30 % failed calls, 6 tries lose a page once in 1,400 (issue 12).
    page_attempts: int = 6
    page_backoff: float = 0.5


@dataclass
class NodeSettings:
    """Heartbeat timings of the node; the defaults are the kubelet's."""

    lease_duration: int = 40
    lease_interval: float = 10.0
    node_status_interval: float = 60.0
    ping_interval: float = 10.0
    # ECI reachability hysteresis (``core.reachability``, where the figures are): while pings fail they run
    # every ping_retry_interval; ECI counts as unreachable after failures lasting eci_unreachable_after, or
    # after eci_refused_failures refused connections in a row (before the first success: that many failures of
    # any kind in a row); the first success clears it.
    ping_retry_interval: float = 2.0
    eci_unreachable_after: float = 30.0
    eci_refused_failures: int = 2
    # `vkeci run --decommission`: how long to wait for the node's pods to go.
    drain_timeout: float = 600.0


@dataclass
class HealthSettings:
    """The health endpoint (``/healthz``, ``/readyz``; ``controllers.health``)."""

    # Loopback outside a pod, like the kubelet's healthz; the manifests give the pod IP (probes cannot
    # reach a pod's loopback).
    address: str = "127.0.0.1"
    port: int = 10248  # the kubelet's healthz port; 0 turns the endpoint off
    # The longest one pass of a loop may take beyond its own period before /healthz fails: a pass makes
    # a few Kubernetes calls (30 s timeout each, up to 60 s waiting for the rate limiter) and ECI calls
    # (10 s read timeout, retried), so 3 minutes is a hang, not a slow pass.
    stale_after: float = 180.0


def default(settings: type, name: str) -> Any:
    """The default of field ``name`` of a settings dataclass (what a flag's default must be)."""
    for item in dataclasses.fields(settings):
        if item.name == name:
            return item.default
    raise KeyError(name)


@dataclass(frozen=True)
class Config:
    """Everything the daemon is configured with. Build it with :func:`load`."""

    region: str = ""
    access_key_id: Secret | None = None
    access_key_secret: Secret | None = None
    security_token: Secret | None = None
    security_group: str = ""
    vswitches: tuple[str, ...] = ()
    cluster_name: str = "default"
    quota_cpu: str = "1000"
    quota_memory: str = "4Ti"
    quota_pods: int = 1000
    kubelet_port: int = 10250
    taint_key: str = "virtual-kubelet.io/provider"
    taint_value: str = "alibabacloud"
    taint_effect: str = "NoSchedule"
    node_name: str = "virtual-kubelet"
    eci_endpoint: str = ""
    eci_protocol: str = "https"
    kubeconfig: str = ""
    schedule_strategy: str = "VSwitchOrdered"
    internal_ip: str = ""
    log_level: str = "info"
    log_format: str = "text"
    status_interval: float = PodSettings.status_interval
    resync_interval: float = PodSettings.resync_interval
    workers: int = PodSettings.workers
    rate_limits: bool = True
    kube_qps: float = 50.0
    kube_burst: int = 100
    # Translation defaults (``vkeci.core.translate.Defaults``); pod annotations override the first two.
    zone_id: str = ""
    resource_group_id: str = ""
    # Cluster DNS for dnsPolicy ClusterFirst (the kube-dns Service IP); empty = ECI's VPC DNS.
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    # The kubelet API's serving certificate and key (files, reloaded on change); unset: self-signed or --tls-csr.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Where ECI pods reach the API server when the `kubernetes` Service's ClusterIP is not routable
    # from the VPC ("host:port"); replaces the KUBERNETES_SERVICE_* variables in-cluster clients use.
    api_server: str = ""
    # Leader election (LeaderSettings has the meaning of each timing).
    leader_elect: bool = True
    leader_lease_duration: float = 15.0
    leader_renew_deadline: float = 10.0
    leader_retry_period: float = 2.0
    leader_namespace: str = ""
    leader_identity: str = ""
    # This daemon's share of the account's ECI per-minute limits (several nodes on one account).
    eci_rate_share: float = 1.0

    def endpoint(self) -> str:
        """The ECI endpoint the SDK should use: the configured one, or the region's public one."""
        return self.eci_endpoint or f"eci.{self.region}.aliyuncs.com"

    def missing(self, *names: str) -> list[str]:
        """One line per setting of ``names`` that is not set: its variable, what it expects, its flag."""
        problems = []
        for name in names:
            if not getattr(self, name):
                setting = _BY_NAME[name]
                problems.append(
                    f"{setting.env[0]} is not set: expected {setting.expected} "
                    f"(flag --{flag_name(name)}, or `{name}:` in the config file)"
                )
        return problems

    def require(self, *names: str) -> None:
        """Fail with a ConfigError listing every one of ``names`` that is not set."""
        problems = self.missing(*names)
        if problems:
            raise ConfigError(*problems)


# What `vkeci run` cannot work without and `vkeci check` checks: without a vSwitch and a security group
# every pod would fail at its CreateContainerGroup, far from the cause.
REQUIRED = ("region", "security_group", "vswitches")


def flag_name(name: str) -> str:
    """The command-line flag of setting ``name``, without the leading dashes (``node-name`` for ``node_name``)."""
    return name.replace("_", "-")


INTERNAL_IP_MISSING = (
    "the node's InternalIP is not set: set VKUBELET_NODE_IP (flag --internal-ip) to an address the API "
    "server can dial, or run in a pod with VKUBELET_POD_IP from the downward API (status.podIP)"
)


def tls_problems(config: Config) -> list[str]:
    """A serving certificate without its key (or the reverse) would silently mean a self-signed one."""
    if bool(config.tls_cert_file) == bool(config.tls_key_file):
        return []
    given, missing = ("tls_cert_file", "tls_key_file") if config.tls_cert_file else ("tls_key_file", "tls_cert_file")
    return [
        f"{_BY_NAME[given].env[0]} (flag --{flag_name(given)}) is set but {_BY_NAME[missing].env[0]} "
        f"(flag --{flag_name(missing)}) is not: give both, or neither for a self-signed certificate"
    ]


def run_problems(config: Config, invalid: frozenset[str] = frozenset()) -> list[str]:
    """What `vkeci run` lacks to start (:data:`REQUIRED`, the InternalIP, a whole TLS pair), one line each;
    nothing about the settings in ``invalid``, whose bad value is already a problem of its own.

    The InternalIP must be given: a silent 127.0.0.1 would make every `kubectl logs` fail far from its cause.
    Loopback is fine when given explicitly (development beside a local cluster)."""
    problems = config.missing(*(name for name in REQUIRED if name not in invalid))
    problems += [] if config.internal_ip or "internal_ip" in invalid else [INTERNAL_IP_MISSING]
    problems += [] if invalid & {"tls_cert_file", "tls_key_file"} else tls_problems(config)
    return problems


def require_for_run(config: Config) -> None:
    """Raise one ConfigError listing every :func:`run_problems` of ``config``."""
    problems = run_problems(config)
    if problems:
        raise ConfigError(*problems)


@dataclass(frozen=True)
class LeaderSettings:
    """Leader election among the replicas of one node, with client-go's timings and meaning.

    A standby takes the Lease once ``lease_duration`` passed on its own clock since it last saw the
    Lease change; the leader stops writing ``renew_deadline`` after the start of its last successful
    renewal, on its own clock. The difference (5 s by default) is the margin for clock rate skew,
    pauses between the check and the send, and writes in flight (README, "High availability")."""

    enabled: bool
    namespace: str
    name: str
    identity: str
    lease_duration: float
    renew_deadline: float
    retry_period: float


# client-go's wait.JitterFactor: the acquire retries wait up to 1.2 x retry_period.
JITTER = 1.2
IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def leader_settings(
    config: Config, hostname: str, suffix: str, namespace_file: str = IN_CLUSTER_NAMESPACE
) -> LeaderSettings:
    """The leader election of ``config``: the Lease ``vkeci-<node>`` in the daemon's namespace
    (``leader_namespace``, else the service account's, else ``default``), and an identity unique to this
    process (``<hostname>_<suffix>``, as client-go's users make it). Raises ConfigError on timings that
    cannot keep two leaders apart."""
    duration, deadline, retry = config.leader_lease_duration, config.leader_renew_deadline, config.leader_retry_period
    if not duration > deadline:
        raise ConfigError(
            f"VKECI_LEADER_LEASE_DURATION = {duration:g} must be greater than VKECI_LEADER_RENEW_DEADLINE = "
            f"{deadline:g}: the difference is the safety margin between the leader's last write and a take-over"
        )
    if not deadline > JITTER * retry:
        raise ConfigError(
            f"VKECI_LEADER_RENEW_DEADLINE = {deadline:g} must be greater than {JITTER} x VKECI_LEADER_RETRY_PERIOD "
            f"= {JITTER * retry:g}: the leader must get more than one renewal attempt before it gives up"
        )
    namespace = config.leader_namespace
    if not namespace:
        try:
            namespace = Path(namespace_file).read_text().strip()
        except OSError:
            namespace = ""
    return LeaderSettings(
        enabled=config.leader_elect,
        namespace=namespace or "default",
        name=f"vkeci-{config.node_name}",
        identity=config.leader_identity or f"{hostname}_{suffix}",
        lease_duration=duration,
        renew_deadline=deadline,
        retry_period=retry,
    )


def _parse(setting: Setting, raw: Any, source: str) -> Any:
    text = ",".join(map(str, raw)) if isinstance(raw, (list, tuple)) else str(raw)
    try:
        value = setting.parse(text)
    except (ValueError, QuantityError):
        shown = "<hidden>" if setting.secret else repr(text)
        raise ConfigError(f"{source} = {shown} is invalid: expected {setting.expected}") from None
    return Secret(value) if setting.secret else value


def _unknown(kind: str, name: str) -> str:
    close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known settings: {', '.join(sorted(_BY_NAME))}"
    return f"{kind} {name!r}; {hint}"


def _from_file(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(_BY_NAME))
    if unknown:
        raise ConfigError(*(f"config file {path}: " + _unknown("unknown setting", name) for name in unknown))
    return data


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
    also: Callable[[Config, frozenset[str]], list[str]] | None = None,
) -> Config:
    """Build a Config from flags (highest priority), the environment, a YAML file and defaults.

    ``flags`` maps field names to values; ``None`` values mean "flag not given".
    ``env`` defaults to ``os.environ``. Raises ConfigError naming every bad value (one line each), and with
    ``also`` (e.g. :func:`run_problems`) what it finds in the rest, so that one run shows everything to fix.
    """
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(flags) - set(_BY_NAME))
    if unknown:
        raise ConfigError(*(_unknown("unknown setting", name) for name in unknown))
    path = config_file or env.get("VKECI_CONFIG")
    file_values = _from_file(path) if path else {}
    values: dict[str, Any] = {}
    problems: list[str] = []
    invalid: set[str] = set()
    for setting in SETTINGS:
        env_name = next((name for name in setting.env if env.get(name, "").strip()), None)
        if setting.name in flags:
            raw, source = flags[setting.name], f"--{flag_name(setting.name)}"
        elif env_name:
            raw, source = env[env_name], env_name
        elif setting.name in file_values and file_values[setting.name] is not None:
            raw, source = file_values[setting.name], f"{path}: {setting.name}"
        else:
            continue
        try:
            values[setting.name] = _parse(setting, raw, source)
        except ConfigError as err:
            problems += err.problems
            invalid.add(setting.name)
    config = Config(**values)
    problems += also(config, frozenset(invalid)) if also else []
    if problems:
        raise ConfigError(*problems)
    return config


def public_view(config: Config) -> dict[str, Any]:
    """The configuration as a dict safe to log: secrets appear only as whether they are set."""
    view: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        view[item.name] = ("set" if value else "unset") if item.name in SECRET_FIELDS else value
    return view
