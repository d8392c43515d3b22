"""Settings of the fake cloud: the VPC it simulates, lifecycle delays, retention, faults at start-up.

Loaded from an optional YAML/JSON file (`--config fake.yaml`) or a dict; every key is optional and the
defaults describe a small VPC in cn-hangzhou. Unknown keys are rejected so a typo does not go unnoticed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Per-minute flow-control limits from eci-openapi.md §5.4 (the lower value where the two pages disagree).
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "DescribeContainerGroups": 2000,
    "DescribeContainerGroupStatus": 10000,
    "DescribeContainerGroupEvents": 10000,
    "DescribeContainerGroupMetric": 2000,
    "DescribeMultiContainerGroupMetric": 500,
    "CreateContainerGroup": 1000,
    "DeleteContainerGroup": 1000,
    "UpdateContainerGroup": 500,
    "RestartContainerGroup": 500,
    "ExecContainerCommand": 500,
    "DescribeContainerLog": 500,
}


class SettingsError(ValueError):
    """A bad fake configuration; the message names the key and what is expected."""


@dataclass(frozen=True)
class VSwitch:
    """A vSwitch of the simulated VPC."""

    id: str
    zone: str
    cidr: str

    def network(self) -> ipaddress.IPv4Network:
        """The CIDR as a network object."""
        return ipaddress.IPv4Network(self.cidr, strict=False)


@dataclass(frozen=True)
class Settings:
    """Everything the fake needs to know about the cloud it pretends to be."""

    region: str = "cn-hangzhou"
    vpc_id: str = "vpc-fake"
    security_groups: tuple[str, ...] = ("sg-fake",)
    vswitches: tuple[VSwitch, ...] = (
        VSwitch("vsw-fake-a", "cn-hangzhou-a", "10.1.0.0/16"),
        VSwitch("vsw-fake-b", "cn-hangzhou-b", "10.2.0.0/16"),
    )
    scheduling_delay_s: float = 1.0
    pending_delay_s: float = 2.0
    restart_delay_s: float = 1.0  # back-off before a real container is restarted by its restart policy
    terminal_retention_s: float = 3600.0  # terminal groups listed in full this long (like the real 1 h)...
    terminal_keep: int = 100  # ...then only the most recent N per region
    tick_s: float = 0.1  # the single ticker: starts/restarts real processes, persists state
    check_timestamp: bool = True
    check_nonce: bool = True
    sandbox: str = "auto"  # auto (chroot when root), chroot, plain
    work_dir: str | None = None  # where sandboxes live; default a temp dir removed on stop
    exec_token_ttl_s: float = 30.0
    extra_credentials: tuple[dict[str, str], ...] = ()
    faults: Mapping[str, Any] = field(default_factory=dict)

    def vswitch(self, vsw_id: str) -> VSwitch | None:
        """The vSwitch with this id, if the VPC has it."""
        return next((v for v in self.vswitches if v.id == vsw_id), None)


_SIMPLE: dict[str, type] = {
    "region": str,
    "vpc_id": str,
    "scheduling_delay_s": float,
    "pending_delay_s": float,
    "restart_delay_s": float,
    "terminal_retention_s": float,
    "terminal_keep": int,
    "tick_s": float,
    "check_timestamp": bool,
    "check_nonce": bool,
    "sandbox": str,
    "work_dir": str,
    "exec_token_ttl_s": float,
}


def from_mapping(data: Mapping[str, Any] | None) -> Settings:
    """Build Settings from a dict (as read from YAML). Raises SettingsError naming the bad key."""
    data = dict(data or {})
    kwargs: dict[str, Any] = {}
    for key, typ in _SIMPLE.items():
        if key not in data:
            continue
        value = data.pop(key)
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (typ is not bool and isinstance(value, bool)):
            raise SettingsError(f"fake config: {key}={value!r} must be a {typ.__name__}")
        if isinstance(value, float) and value < 0:
            raise SettingsError(f"fake config: {key}={value!r} must be >= 0")
        kwargs[key] = value
    if "security_groups" in data:
        sgs = data.pop("security_groups")
        if not isinstance(sgs, list) or not sgs or not all(isinstance(s, str) for s in sgs):
            raise SettingsError("fake config: security_groups must be a non-empty list of ids")
        kwargs["security_groups"] = tuple(sgs)
    if "vswitches" in data:
        kwargs["vswitches"] = _vswitches(data.pop("vswitches"))
    if "credentials" in data:
        creds = data.pop("credentials")
        if not isinstance(creds, list) or not all(isinstance(c, dict) and "access_key_id" in c for c in creds):
            raise SettingsError("fake config: credentials must be a list of {access_key_id, access_key_secret[, ...]}")
        kwargs["extra_credentials"] = tuple(creds)
    if "faults" in data:
        faults = data.pop("faults")
        if not isinstance(faults, dict):
            raise SettingsError("fake config: faults must be a mapping (see fakes/README.md)")
        kwargs["faults"] = faults
    if data:
        raise SettingsError(f"fake config: unknown key(s) {', '.join(sorted(data))}; see fakes/README.md")
    settings = Settings(**kwargs)
    if settings.sandbox not in ("auto", "chroot", "plain"):
        raise SettingsError(f"fake config: sandbox={settings.sandbox!r} must be auto, chroot or plain")
    return settings


def _vswitches(raw: Any) -> tuple[VSwitch, ...]:
    if not isinstance(raw, list) or not raw:
        raise SettingsError("fake config: vswitches must be a non-empty list of {id, zone, cidr}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"id", "zone", "cidr"} <= set(item):
            raise SettingsError(f"fake config: vswitches[{i}] must have id, zone and cidr")
        try:
            ipaddress.IPv4Network(item["cidr"], strict=False)
        except ValueError:
            raise SettingsError(f"fake config: vswitches[{i}].cidr={item['cidr']!r} is not an IPv4 CIDR") from None
        out.append(VSwitch(str(item["id"]), str(item["zone"]), str(item["cidr"])))
    return tuple(out)


def load_file(path: str | Path) -> Settings:
    """Read a YAML (or JSON) fake configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SettingsError(f"fake config: cannot read {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise SettingsError(f"fake config: {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"fake config: {path} must hold a mapping at the top level")
    return from_mapping(data)
