"""The ``k8s.aliyun.com/*`` pod annotations: parsed, checked, and turned into request fields.

Annotations are read once, when the pod is created (as on Alibaba's own virtual node), and
override the daemon's defaults. A malformed value is a ``Problem`` that names the annotation and
the form it expects; the other annotations are still read so that every problem is reported at
once.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from vkeci.core import sizes
from vkeci.core.identity import IDENTITY_KEYS
from vkeci.core.problems import Problem
from vkeci.core.quantity import QuantityError, parse_quantity

PREFIX = "k8s.aliyun.com/"

VSWITCH = PREFIX + "eci-vswitch"
SCHEDULE_STRATEGY = PREFIX + "eci-schedule-strategy"
SECURITY_GROUP = PREFIX + "eci-security-group"
USE_SPECS = PREFIX + "eci-use-specs"
INSTANCE_TYPE = PREFIX + "eci-instance-type"
GPU_TYPE = PREFIX + "eci-gpu-type"
SPOT_STRATEGY = PREFIX + "eci-spot-strategy"
SPOT_PRICE_LIMIT = PREFIX + "eci-spot-price-limit"
SPOT_DURATION = PREFIX + "eci-spot-duration"
SPOT_FALLBACK = PREFIX + "eci-spot-fallback"
FAIL_STRATEGY = PREFIX + "eci-fail-strategy"
FAIL_ON_CREATE_ERR = PREFIX + "pod-fail-on-create-err"
CUSTOM_HOSTS = PREFIX + "eci-custom-hosts"
CUSTOM_TAGS = PREFIX + "eci-custom-tags"
RAM_ROLE = PREFIX + "eci-ram-role-name"
RESOURCE_GROUP = PREFIX + "eci-resource-group-id"
AUTO_IMC = PREFIX + "eci-auto-imc"
AUTO_IMC_OLD = PREFIX + "eci-image-cache"
IMC_ID = PREFIX + "eci-imc-id"
IMC_ID_OLD = PREFIX + "eci-image-snapshot-id"
ACR_INSTANCES = PREFIX + "acr-instance-ids"
ACR_INSTANCE_OLD = PREFIX + "acr-instance-id"
PLAIN_HTTP_REGISTRY = PREFIX + "plain-http-registry"
INSECURE_REGISTRY = PREFIX + "insecure-registry"
EPHEMERAL_STORAGE = PREFIX + "eci-extra-ephemeral-storage"
NTP_SERVER = PREFIX + "eci-ntp-server"
CORE_PATTERN = PREFIX + "eci-core-pattern"
WITH_EIP = PREFIX + "eci-with-eip"
EIP_INSTANCE = PREFIX + "eci-eip-instanceid"
EIP_BANDWIDTH = PREFIX + "eip-bandwidth"
EIP_PACKAGE = PREFIX + "eip-common-bandwidth-package-id"
EIP_ISP = PREFIX + "eip-isp"
EIP_CHARGE_TYPE = PREFIX + "eip-internet-charge-type"
CUSTOM_DNS = PREFIX + "eci-custom-dnsconfig"
INGRESS_BANDWIDTH = "kubernetes.io/ingress-bandwidth"
EGRESS_BANDWIDTH = "kubernetes.io/egress-bandwidth"

# "Later" annotations that map one-to-one onto request fields, supported because they are cheap.
COMPUTE_CATEGORY = PREFIX + "eci-compute-category"
GPU_DRIVER_VERSION = PREFIX + "eci-gpu-driver-version"
CPU_OPTION_CORE = PREFIX + "eci-cpu-option-core"
CPU_OPTION_HT = PREFIX + "eci-cpu-option-ht"
ENABLE_IPV6 = PREFIX + "eci-enable-ipv6"
PRIVATE_IP = PREFIX + "eci-private-ip-address"
FIXED_IP = PREFIX + "eci-fixed-ip"
FIXED_IP_RETAIN_HOUR = PREFIX + "eci-fixed-ip-retain-hour"

# Written back by the daemon after scheduling (eci-annotations-and-mapping.md §2.5); never inputs.
INSTANCE_ID = PREFIX + "eci-instance-id"
INSTANCE_SPEC = PREFIX + "eci-instance-spec"
REQUEST_ID = PREFIX + "eci-request-id"
CLIENT_TOKEN = PREFIX + "eci-client-token"

# What Alibaba's virtual node writes back after scheduling (eci-annotations-and-mapping.md §2.5; vk-eci writes
# the ones in ``core.writeback``): on a pod, never inputs and never "unknown".
WRITTEN_BACK = frozenset(
    PREFIX + name
    for name in (
        "eci-request-id",
        "eci-instance-id",
        "eci-instance-spec",
        "eci-instance-compute-category",
        "eci-instance-cpu",
        "eci-instance-mem",
        "eci-instance-zone",
        "eci-client-token",
        "eci-created-by-template",
        "eci-vpc",
        "eci-matched-image-cache",
        "eci-schedule-result",
        "eci-kube-proxy-enabled",
        "allocated-eipInstanceId",
        "allocated-eipAddress",
        "allocated-ipv6Address",
        "eni-instance-id",
        "k8s-version",
        "vk-version",
    )
)

# Alibaba documents these (same reference, §2) and vk-eci does not honour them yet: each is named as not
# supported, with what to do instead where there is something.
NOT_SUPPORTED: dict[str, str] = {
    PREFIX + "eci-instance-family": f"name the instance types in {USE_SPECS} instead, e.g. ecs.c6.xlarge,ecs.g6.xlarge",
    PREFIX + "eci-instance-generation": f"name the instance types in {USE_SPECS} instead",
    PREFIX + "eci-privatepool-matchcriteria": "",
    PREFIX + "eci-privatepool-id": "",
    PREFIX + "eci-max-pending-minute": "",
    PREFIX + "eci-reschedule-enable": "",
    PREFIX + "imc-perfect-match": f"name the image cache with {IMC_ID}",
    PREFIX + "imc-match-count-request": f"name the image cache with {IMC_ID}",
    PREFIX + "acr-service-arns": "",
    PREFIX + "acr-user-arns": "",
    PREFIX + "eci-data-cache-bucket": "",
    PREFIX + "eci-data-cache-pl": "",
    PREFIX + "eci-data-cache-provisionedIops": "",
    PREFIX + "eci-data-cache-burstingEnabled": "",
    PREFIX + "eci-ephemeral-storage-options": "",
    PREFIX + "eci-eviction-enable": "",
    PREFIX + "eci-sls-enable": "",
    PREFIX + "eip-public-ip-address-pool-id": "",
    PREFIX + "eci-ipv6-bandwidth-enable": "",
    PREFIX + "eci-ipv6-bandwidth": "",
}

MAX_USER_TAGS = 3
MAX_VSWITCHES = 10
MAX_SECURITY_GROUPS = 5
FAIL_STRATEGIES = ("fail-back", "fail-over", "fail-fast")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_ECS_TYPE = re.compile(r"^ecs\.[a-z0-9-]+\.[a-z0-9-]+$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$")
_IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")


def field_path(annotation: str) -> str:
    """The field path users see in errors for an annotation."""
    return f"metadata.annotations['{annotation}']"


@dataclass
class PodOptions:
    """What the annotations ask for. ``request`` holds CreateContainerGroup fields (wire names)."""

    request: dict[str, Any] = field(default_factory=dict)
    use_specs: list[str] = field(default_factory=list)
    user_tags: list[tuple[str, str]] = field(default_factory=list)
    host_aliases: list[dict[str, Any]] = field(default_factory=list)
    dns_config: dict[str, Any] | None = None
    gpu_type: str = ""
    fail_strategy: str = "fail-back"
    fail_on_create_error: bool = False
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


class _Bad(ValueError):
    """A malformed annotation value; the message says what form is expected."""


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise _Bad('expected "true" or "false"')


def _ids(label: str, limit: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        items = _csv(value)
        if not items:
            raise _Bad(f"expected one or more {label} ids separated by commas")
        if len(items) > limit:
            raise _Bad(f"ECI accepts at most {limit} {label} ids, got {len(items)}")
        bad = [item for item in items if not _ID.match(item)]
        if bad:
            raise _Bad(f"{bad[0]!r} is not a {label} id; expected ids like {label}-xxxx separated by commas")
        return ",".join(items)

    return parse


def _one_id(label: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        text = value.strip()
        if not _ID.match(text):
            raise _Bad(f"expected a single {label} id")
        return text

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        text = value.strip()
        if text not in choices:
            same = [c for c in choices if c.lower() == text.lower()]
            hint = f" (did you mean {same[0]}? the values are case-sensitive)" if same else ""
            raise _Bad(f"expected one of {', '.join(choices)}{hint}")
        return text

    return parse


def _int_range(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
            raise _Bad(f"expected a whole number of {what} from {low} to {high}")
        return int(text)

    return parse


def _price(value: str) -> float:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise _Bad('expected an hourly price such as "0.25" (at most 3 decimals)') from None
    if not number.is_finite() or number <= 0 or number.as_tuple().exponent < -3:  # type: ignore[operator]
        raise _Bad('expected a positive hourly price with at most 3 decimals, such as "0.25"')
    return float(number)


def _gib(value: str) -> int:
    try:
        amount = parse_quantity(value)
    except QuantityError:
        raise _Bad('expected a size such as "50Gi"') from None
    gib = (amount / Decimal(2**30)).to_integral_value(rounding=ROUND_CEILING)
    if gib <= 0 or gib > 2048:
        raise _Bad('expected a size from 1Gi to 2048Gi, such as "50Gi"')
    return int(gib)


def _bits_per_second(value: str) -> int:
    try:
        amount = parse_quantity(value)
    except QuantityError:
        raise _Bad('expected a bandwidth such as "10M" (bits per second)') from None
    bits = int(amount.to_integral_value(rounding=ROUND_CEILING))
    if bits <= 0 or bits > 10**12:
        raise _Bad('expected a positive bandwidth such as "10M" (bits per second)')
    return bits


def _hosts(value: str) -> str:
    items = _csv(value)
    if not items or any(not _HOST.match(item) for item in items):
        raise _Bad('expected registry addresses such as "harbor.example.com" or "10.0.0.5:5000", comma-separated')
    return ",".join(items)


def _ntp(value: str) -> list[str]:
    items = _csv(value)
    if not items or any(not _HOST.match(item) for item in items):
        raise _Bad('expected NTP server addresses such as "100.100.5.1,100.100.5.2"')
    return items


def _categories(value: str) -> list[str]:
    items = _csv(value)
    if not items or any(item not in ("economy", "general") for item in items):
        raise _Bad('expected "economy", "general" or both in order of preference, comma-separated')
    return items


def _ipv4(value: str) -> str:
    text = value.strip()
    if not _IPV4.match(text):
        raise _Bad("expected an IPv4 address such as 192.168.1.20")
    return text


def _ipv6_count(value: str) -> int:
    return 1 if _bool(value) else 0


def _fixed_ip(value: str) -> str:
    return "true" if _bool(value) else "false"


def _driver(value: str) -> str:
    text = value.strip()
    if not re.fullmatch(r"tesla=[0-9]+(\.[0-9]+)*", text):
        raise _Bad('expected a driver such as "tesla=525.85.12"')
    return text


def _core_pattern(value: str) -> str:
    text = value.strip()
    if not text.startswith("/"):
        raise _Bad('expected an absolute path such as "/pod/data/dump/core" (it cannot start with "|")')
    return text


def _use_specs(value: str) -> list[str]:
    items = _csv(value)
    if not items:
        raise _Bad('expected specs such as "2-4Gi,4-8Gi,ecs.c6.xlarge"')
    result = []
    for item in items:
        if _ECS_TYPE.match(item):
            result.append(item)
            continue
        parsed = sizes.parse_spec(item)
        if parsed is None:
            raise _Bad(f'{item!r} is neither "<vCPU>-<memory>Gi" (like 2-4Gi) nor an ECS type (like ecs.c6.xlarge)')
        try:
            cpu, memory = sizes.round_up(*parsed)
        except sizes.SizeError as exc:
            raise _Bad(f"{item!r}: {exc}") from None
        result.append(f"{sizes.fmt(cpu)}-{sizes.fmt(memory)}Gi")
    return result


_TAG_FORBIDDEN = ("http://", "https://")


def _custom_tags(value: str) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    for item in _csv(value):
        tag_key, sep, tag_value = item.partition(":")
        tag_key, tag_value = tag_key.strip(), tag_value.strip()
        if not sep or not tag_key:
            raise _Bad(f'{item!r} is not "key:value"; expected tags like "env:test,owner:alice"')
        if len(tag_key) > 64 or tag_key.startswith(("acs:", "aliyun")) or any(s in tag_key for s in _TAG_FORBIDDEN):
            raise _Bad(f"tag key {tag_key!r} is not allowed: at most 64 characters, not starting with acs: or aliyun")
        if len(tag_value) > 128 or tag_value.startswith("acs:") or any(s in tag_value for s in _TAG_FORBIDDEN):
            raise _Bad(f"the value of tag {tag_key!r} is not allowed: at most 128 characters, not starting with acs:")
        if tag_key in IDENTITY_KEYS:
            raise _Bad(f"tag key {tag_key!r} is reserved by vk-eci to identify the pod")
        if any(tag_key == seen for seen, _ in result):
            raise _Bad(f"tag key {tag_key!r} appears twice")
        result.append((tag_key, tag_value))
    if not result:
        raise _Bad('expected tags like "env:test,owner:alice"')
    if len(result) > MAX_USER_TAGS:
        raise _Bad(f"at most {MAX_USER_TAGS} custom tags, got {len(result)}")
    return result


def _acr(value: str) -> list[dict[str, Any]]:
    result = []
    for item in _csv(value):
        region, _, instance = item.rpartition(":")
        if not instance.startswith("cri-") or not _ID.match(instance) or (region and not _ID.match(region)):
            raise _Bad(f'{item!r}: expected ACR EE instance ids like "cri-xxx" or "cn-beijing:cri-xxx"')
        entry: dict[str, Any] = {"InstanceId": instance}
        if region:
            entry["RegionId"] = region
        result.append(entry)
    if not result:
        raise _Bad('expected ACR EE instance ids like "cri-xxx" or "cn-beijing:cri-xxx"')
    return result


def _custom_hosts(value: str) -> list[dict[str, Any]]:
    expected = 'expected JSON like [{"host":"example.com","ip":"10.0.0.1"}]'
    try:
        data = json.loads(value)
    except ValueError:
        raise _Bad(f"not valid JSON; {expected}") from None
    if not isinstance(data, list):
        raise _Bad(expected)
    result = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("ip"), str):
            raise _Bad(expected)
        hosts = entry.get("host", entry.get("hostnames"))
        names = [hosts] if isinstance(hosts, str) else hosts
        if not isinstance(names, list) or not names or not all(isinstance(h, str) and h for h in names):
            raise _Bad(expected)
        result.append({"Ip": entry["ip"], "Hostname": list(names)})
    return result


def _custom_dns(value: str) -> dict[str, Any]:
    expected = (
        'expected JSON like {"nameservers":["1.1.1.1"],"searches":["svc.local"],'
        '"options":[{"name":"ndots","value":"2"}]}'
    )
    try:
        data = json.loads(value)
    except ValueError:
        raise _Bad(f"not valid JSON; {expected}") from None
    if not isinstance(data, dict) or set(data) - {"nameservers", "searches", "options"}:
        raise _Bad(expected)
    return dns_config(data, _Bad(expected))


def dns_config(data: Mapping[str, Any], error: Exception) -> dict[str, Any]:
    """A Kubernetes ``dnsConfig`` (nameservers, searches, options) as the request's ``DnsConfig``."""
    servers = data.get("nameservers") or []
    searches = data.get("searches") or []
    options = data.get("options") or []
    if not isinstance(servers, list) or not all(isinstance(s, str) for s in servers):
        raise error
    if not isinstance(searches, list) or not all(isinstance(s, str) for s in searches):
        raise error
    if not isinstance(options, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in options
    ):
        raise error
    result: dict[str, Any] = {}
    if servers:
        result["NameServer"] = list(servers)
    if searches:
        result["Search"] = list(searches)
    if options:
        result["Option"] = [
            {"Name": o["name"], **({"Value": str(o["value"])} if o.get("value") is not None else {})} for o in options
        ]
    return result


# annotation -> (parser, request field or None, aliases)
_SIMPLE: dict[str, tuple[Callable[[str], Any], str]] = {
    VSWITCH: (_ids("vsw", MAX_VSWITCHES), "VSwitchId"),
    SCHEDULE_STRATEGY: (_choice("VSwitchOrdered", "VSwitchRandom"), "ScheduleStrategy"),
    SECURITY_GROUP: (_ids("sg", MAX_SECURITY_GROUPS), "SecurityGroupId"),
    SPOT_STRATEGY: (_choice("NoSpot", "SpotWithPriceLimit", "SpotAsPriceGo"), "SpotStrategy"),
    SPOT_PRICE_LIMIT: (_price, "SpotPriceLimit"),
    SPOT_DURATION: (_int_range(0, 6, "hours"), "SpotDuration"),
    RAM_ROLE: (_one_id("RAM role name"), "RamRoleName"),
    RESOURCE_GROUP: (_one_id("rg"), "ResourceGroupId"),
    AUTO_IMC: (_bool, "AutoMatchImageCache"),
    IMC_ID: (_one_id("imc"), "ImageSnapshotId"),
    ACR_INSTANCES: (_acr, "AcrRegistryInfo"),
    PLAIN_HTTP_REGISTRY: (_hosts, "PlainHttpRegistry"),
    INSECURE_REGISTRY: (_hosts, "InsecureRegistry"),
    EPHEMERAL_STORAGE: (_gib, "EphemeralStorage"),
    NTP_SERVER: (_ntp, "NtpServer"),
    CORE_PATTERN: (_core_pattern, "CorePattern"),
    WITH_EIP: (_bool, "AutoCreateEip"),
    EIP_INSTANCE: (_one_id("eip"), "EipInstanceId"),
    EIP_BANDWIDTH: (_int_range(1, 10000, "Mbit/s"), "EipBandwidth"),
    EIP_PACKAGE: (_one_id("cbwp"), "EipCommonBandwidthPackage"),
    EIP_ISP: (_choice("BGP", "BGP_PRO"), "EipISP"),
    INGRESS_BANDWIDTH: (_bits_per_second, "IngressBandwidth"),
    EGRESS_BANDWIDTH: (_bits_per_second, "EgressBandwidth"),
    COMPUTE_CATEGORY: (_categories, "ComputeCategory"),
    GPU_DRIVER_VERSION: (_driver, "GpuDriverVersion"),
    CPU_OPTION_CORE: (_int_range(1, 64, "physical cores"), "CpuOptionsCore"),
    CPU_OPTION_HT: (_int_range(1, 2, "threads per core"), "CpuOptionsThreadsPerCore"),
    ENABLE_IPV6: (_ipv6_count, "Ipv6AddressCount"),
    PRIVATE_IP: (_ipv4, "PrivateIpAddress"),
    FIXED_IP: (_fixed_ip, "FixedIp"),
    FIXED_IP_RETAIN_HOUR: (_int_range(1, 8760, "hours"), "FixedIpRetainHour"),
}
# Older names Alibaba still honours: old -> current.
ALIASES = {
    AUTO_IMC_OLD: AUTO_IMC,
    IMC_ID_OLD: IMC_ID,
    ACR_INSTANCE_OLD: ACR_INSTANCES,
    INSTANCE_TYPE: USE_SPECS,
}

# Annotations read into a PodOptions attribute rather than straight into the request.
_OPTIONS: dict[str, tuple[Callable[[str], Any], str]] = {
    USE_SPECS: (_use_specs, "use_specs"),
    CUSTOM_TAGS: (_custom_tags, "user_tags"),
    CUSTOM_HOSTS: (_custom_hosts, "host_aliases"),
    CUSTOM_DNS: (_custom_dns, "dns_config"),
    FAIL_STRATEGY: (_choice(*FAIL_STRATEGIES), "fail_strategy"),
    FAIL_ON_CREATE_ERR: (_bool, "fail_on_create_error"),
}

_EXPECTED_EXAMPLE = {
    SPOT_STRATEGY: "SpotAsPriceGo",
    SPOT_PRICE_LIMIT: '"0.5"',
}


# Every annotation read here (legacy names included); GPU_TYPE, SPOT_FALLBACK and EIP_CHARGE_TYPE have their own code.
SUPPORTED = frozenset({*_SIMPLE, *_OPTIONS, *ALIASES, GPU_TYPE, SPOT_FALLBACK, EIP_CHARGE_TYPE})


def _unknown_warnings(names: list[str]) -> list[Problem]:
    """A warning for each ``k8s.aliyun.com/*`` key vk-eci does not read: not supported yet, or unknown (a typo
    costs money silently: ``eci-usespecs: 8-16Gi`` ran on the default 2 vCPU / 4 GiB)."""
    known = sorted(SUPPORTED | set(NOT_SUPPORTED))
    warnings = []
    for name in names:
        if name in NOT_SUPPORTED:
            fix = NOT_SUPPORTED[name] or "remove it; the pod runs without it"
            warnings.append(Problem(field_path(name), "not supported by vk-eci yet; ignored", fix))
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        fix = f"did you mean {close[0]}?" if close else "see the README's list of supported annotations"
        warnings.append(Problem(field_path(name), "unknown annotation; ignored", fix))
    return warnings


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse(annotations: Mapping[str, Any] | None) -> PodOptions:
    """Read every supported annotation. Never raises: problems are collected on the result."""
    options = PodOptions()
    values: dict[str, str] = {}
    source: dict[str, str] = {}
    for name, raw in (annotations or {}).items():
        if not isinstance(name, str) or raw is None:
            continue
        current = ALIASES.get(name, name)
        if current in values and name in ALIASES:
            continue  # the current name wins over the legacy one
        values[current] = _text(raw)
        source[current] = name

    failed: set[str] = set()

    def bad(name: str, exc: Exception) -> None:
        failed.add(name)
        shown = values.get(name, "")
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        options.problems.append(Problem(field_path(source.get(name, name)), f"invalid value {shown!r}: {exc}"))

    for name, (parser, wire) in _SIMPLE.items():
        if name in values:
            try:
                options.request[wire] = parser(values[name])
            except _Bad as exc:
                bad(name, exc)
    if options.request.get("Ipv6AddressCount") == 0:
        del options.request["Ipv6AddressCount"]  # "false": ECI only accepts a count of 1
    for name, (parser, attribute) in _OPTIONS.items():
        if name in values:
            try:
                setattr(options, attribute, parser(values[name]))
            except _Bad as exc:
                bad(name, exc)
    if SPOT_FALLBACK in values:
        try:
            # Fallback to pay-as-you-go is the opposite of ECI's StrictSpot.
            options.request["StrictSpot"] = not _bool(values[SPOT_FALLBACK])
        except _Bad as exc:
            bad(SPOT_FALLBACK, exc)
    if GPU_TYPE in values:
        options.gpu_type = values[GPU_TYPE].strip()
    if EIP_CHARGE_TYPE in values:
        try:
            _choice("PayByBandwidth", "PayByTraffic")(values[EIP_CHARGE_TYPE])
            options.warnings.append(
                Problem(
                    field_path(EIP_CHARGE_TYPE),
                    "ignored: the CreateContainerGroup API has no charge-type field",
                    "set the charge type on an existing EIP and bind it with k8s.aliyun.com/eci-eip-instanceid",
                )
            )
        except _Bad as exc:
            bad(EIP_CHARGE_TYPE, exc)
    _check_combinations(options, failed)
    unread = [n for n in values if n.startswith(PREFIX) and n not in SUPPORTED and n not in WRITTEN_BACK]
    options.warnings += _unknown_warnings(sorted(unread))
    return options


def _check_combinations(options: PodOptions, failed: set[str]) -> None:
    """Checks between annotations. One whose value failed to parse is already a problem: nothing that
    depends on it is checked (``spotAsPriceGo`` must not also give "spot-duration only applies to spot")."""
    request = options.request
    strategy = request.get("SpotStrategy")
    if SPOT_STRATEGY in failed:
        strategy = "?"  # unknown: no spot rule can be judged
    if strategy == "SpotWithPriceLimit" and "SpotPriceLimit" not in request and SPOT_PRICE_LIMIT not in failed:
        options.problems.append(
            Problem(
                field_path(SPOT_PRICE_LIMIT),
                "missing: SpotWithPriceLimit needs a price limit",
                f'add {SPOT_PRICE_LIMIT}: "0.5" (hourly price), or use {SPOT_STRATEGY}: SpotAsPriceGo',
            )
        )
    if "SpotPriceLimit" in request and strategy not in ("SpotWithPriceLimit", "?"):
        options.problems.append(
            Problem(
                field_path(SPOT_PRICE_LIMIT),
                "a price limit only applies with the SpotWithPriceLimit strategy",
                f"add {SPOT_STRATEGY}: SpotWithPriceLimit, or remove the price limit",
            )
        )
    if strategy in (None, "NoSpot"):
        for name, wire in ((SPOT_DURATION, "SpotDuration"), (SPOT_FALLBACK, "StrictSpot")):
            if wire in request:
                options.problems.append(
                    Problem(
                        field_path(name),
                        "only applies to spot instances",
                        f"add {SPOT_STRATEGY}: SpotAsPriceGo (or SpotWithPriceLimit), or remove it",
                    )
                )
    if request.get("AutoCreateEip") and "EipInstanceId" in request:
        options.problems.append(
            Problem(
                field_path(EIP_INSTANCE),
                f"conflicts with {WITH_EIP}: true (a pod gets either a new EIP or an existing one)",
                "remove one of the two annotations",
            )
        )
    if not request.get("AutoCreateEip") and WITH_EIP not in failed:
        for name, wire in (
            (EIP_BANDWIDTH, "EipBandwidth"),
            (EIP_ISP, "EipISP"),
            (EIP_PACKAGE, "EipCommonBandwidthPackage"),
        ):
            if wire in request:
                options.problems.append(
                    Problem(field_path(name), "only applies to a new EIP", f'add {WITH_EIP}: "true", or remove it')
                )
