"""Validation and normalisation of CreateContainerGroup / UpdateContainerGroup parameters.

Pure functions: parameter tree in, plain dicts out (already in the response's key spelling, so rendering a
group is mostly copying). Limits and rules follow eci-openapi.md §5.4.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal
from typing import Any

from fakes.eci import reference
from fakes.eci.errors import ApiError, invalid, missing
from fakes.eci.params import Params
from fakes.eci.settings import Settings, VSwitch

# ECI guide "Mount a ConfigFile volume": one file at most 32 KB, all files of a volume at most 60 KB
# (KB read as KiB, as vk-eci's translator does; the error code for a breach is inferred).
MAX_CONFIG_FILE_BYTES = 32 * 1024
MAX_CONFIG_VOLUME_BYTES = 60 * 1024

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])$")
CONTAINER_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_CONTAINERS = 20
MAX_VOLUMES = 20
MAX_TAGS = 20
MAX_ARGS = 10
VOLUME_TYPES = (
    "EmptyDirVolume",
    "NFSVolume",
    "ConfigFileVolume",
    "FlexVolume",
    "HostPathVolume",
    "DiskVolume",
)

# vCPU -> memory GiB supported in all regions (eci-openapi.md §5.4).
SPECS: dict[Decimal, tuple[Decimal, ...]] = {
    Decimal(c): tuple(Decimal(m) for m in ms)
    for c, ms in {
        "0.25": ("0.5", "1"),
        "0.5": ("1", "2"),
        "1": ("2", "4", "8"),
        "2": ("1", "2", "4", "8", "16"),
        "4": ("2", "4", "8", "16", "32"),
        "8": ("4", "8", "16", "32", "64"),
        "12": ("12", "24", "48", "96"),
        "16": ("16", "32", "64", "128"),
        "24": ("24", "48", "96", "192"),
        "32": ("32", "64", "128", "256"),
        "52": ("96", "192", "384"),
        "64": ("128", "256", "512"),
    }.items()
}


def round_up_spec(cpu: float, memory: float) -> tuple[float, float]:
    """The smallest supported (vCPU, GiB) >= the request, like the service's round-up; ApiError if too big."""
    c, m = Decimal(str(cpu)), Decimal(str(memory))
    for vcpu in sorted(SPECS):
        if vcpu < c:
            continue
        for mem in SPECS[vcpu]:
            if mem >= m:
                return float(vcpu), float(mem)
    raise ApiError(
        "InvalidParameter.CpuMemory",
        f"No instance specification has at least {cpu} vCPU and {memory} GiB; the largest is 64 vCPU / 512 GiB.",
    )


def tags(p: Params) -> list[dict[str, str]]:
    """Tag.N of a create or update request, validated (≤20, unique keys, no acs:/aliyun prefixes)."""
    out = []
    seen = set()
    for t in p.objects("Tag", max_items=MAX_TAGS):
        key = t.text("Key", required=True, max_len=64)
        value = t.text("Value", default="", max_len=128) or ""
        if key in seen:
            raise invalid(t.name("Key"), f'tag key "{key}" is repeated; keys must be unique')
        if key.startswith(("acs:", "aliyun")) or "http://" in key or "https://" in key:
            raise invalid(t.name("Key"), "a tag key cannot start with acs: or aliyun, or contain http(s)://")
        if value.startswith("acs:") or "http://" in value or "https://" in value:
            raise invalid(t.name("Value"), "a tag value cannot start with acs: or contain http(s)://")
        seen.add(key)
        out.append({"Key": key, "Value": value})
    return out


def tag_filters(p: Params) -> list[dict[str, str]]:
    """Tag.N filters of a Describe call (value optional: matches any value when empty)."""
    return [{"Key": t.text("Key", required=True), "Value": t.text("Value", default="") or ""} for t in p.objects("Tag")]


def _probe(p: Params | None) -> dict[str, Any] | None:
    if p is None:
        return None
    out: dict[str, Any] = {}
    for k in ("InitialDelaySeconds", "PeriodSeconds", "SuccessThreshold", "FailureThreshold", "TimeoutSeconds"):
        v = p.integer(k, lo=0)
        if v is not None:
            out[k] = v
    ex = p.obj("Exec")
    if ex is not None:
        out["Execs"] = ex.strings("Command")
    hg = p.obj("HttpGet")
    if hg is not None:
        out["HttpGet"] = {
            "Path": hg.text("Path", default=""),
            "Port": hg.integer("Port", lo=1, hi=65535),
            "Scheme": hg.choice("Scheme", ("HTTP", "HTTPS"), default="HTTP"),
        }
    ts = p.obj("TcpSocket")
    if ts is not None:
        out["TcpSocket"] = {"Host": ts.text("Host", default=""), "Port": ts.integer("Port", lo=1, hi=65535)}
    return out


def container(p: Params, volume_names: set[str], *, init: bool) -> dict[str, Any]:
    """One Container.N / InitContainer.N, validated, in response spelling."""
    name = p.text("Name", required=True)
    if not CONTAINER_NAME_RE.match(name):
        raise invalid(p.name("Name"), f'"{name}": 1-63 lowercase letters, digits and hyphens, not starting/ending in -')
    image = p.text("Image", required=True)
    try:
        reference.check(image)
    except reference.InvalidReference as exc:
        shown = image if len(image) <= 80 else f"{image[:60]}... ({len(image)} characters)"
        raise invalid(p.name("Image"), f'"{shown}" is not an image reference a runtime can pull: {exc}') from None
    args = p.strings("Arg")
    if len(args) > MAX_ARGS:
        raise invalid(p.name("Arg"), f"at most {MAX_ARGS} arguments are allowed, got {len(args)}")
    env = []
    for e in p.objects("EnvironmentVar"):
        key = e.text("Key", required=True)
        if not ENV_NAME_RE.match(key):
            raise invalid(e.name("Key"), f'"{key}": 1-128 letters, digits and underscores, not starting with a digit')
        value = e.text("Value", default="", max_len=256) or ""
        item: dict[str, Any] = {"Key": key, "Value": value}
        fr = e.obj("FieldRef")
        if fr is not None:
            path = fr.text("FieldPath", required=True)
            if path != "status.podIP":
                raise invalid(fr.name("FieldPath"), f'"{path}": only status.podIP is supported')
            item["ValueFrom"] = {"FieldRef": {"FieldPath": path}}
        env.append(item)
    ports = []
    for port in p.objects("Port"):
        ports.append(
            {
                "Port": port.integer("Port", lo=1, hi=65535),
                "Protocol": port.choice("Protocol", ("TCP", "UDP"), default="TCP"),
            }
        )
    mounts = []
    for vm in p.objects("VolumeMount"):
        vname = vm.text("Name", required=True)
        if vname not in volume_names:
            raise invalid(vm.name("Name"), f'no volume named "{vname}" is declared in Volume.N.Name')
        mount_path = vm.text("MountPath", required=True)
        if not mount_path.startswith("/"):
            raise invalid(vm.name("MountPath"), f'"{mount_path}" must be an absolute path')
        mounts.append(
            {
                "Name": vname,
                "MountPath": mount_path,
                "ReadOnly": bool(vm.flag("ReadOnly", default=False)),
                "SubPath": vm.text("SubPath", default="") or "",
                "MountPropagation": vm.choice(
                    "MountPropagation", ("None", "HostToContainer", "Bidirectional"), default="None"
                ),
            }
        )
    sc = p.obj("SecurityContext")
    security: dict[str, Any] = {}
    if sc is not None:
        cap = sc.obj("Capability")
        security = {
            "Capability": {"Adds": cap.strings("Add") if cap else []},
            "ReadOnlyRootFilesystem": bool(sc.flag("ReadOnlyRootFilesystem", default=False)),
            "RunAsUser": sc.integer("RunAsUser", lo=0) or 0,
        }
    out: dict[str, Any] = {
        "Name": name,
        "Image": image,
        "Args": args,
        "Cpu": p.number("Cpu", default=0.0),
        "Memory": p.number("Memory", default=0.0),
        "Gpu": p.integer("Gpu", default=0, lo=0),
        "EnvironmentVars": env,
        "ImagePullPolicy": p.choice("ImagePullPolicy", ("Always", "IfNotPresent", "Never"), default="IfNotPresent"),
        "Ports": ports,
        "VolumeMounts": mounts,
        "WorkingDir": p.text("WorkingDir", default="") or "",
        "SecurityContext": security,
    }
    # The response spells init containers' commands "Command" and app containers' "Commands".
    out["Command" if init else "Commands"] = p.strings("Command")
    if not init:
        out["Tty"] = bool(p.flag("Tty", default=False))
        out["Stdin"] = bool(p.flag("Stdin", default=False))
        out["StdinOnce"] = bool(p.flag("StdinOnce", default=False))
        for key in ("LivenessProbe", "ReadinessProbe"):
            probe = _probe(p.obj(key))
            if probe is not None:
                out[key] = probe
    return out


def volume(p: Params) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One Volume.N: (response-shaped volume, files to materialise [{Path, Content(bytes b64), Mode}])."""
    name = p.text("Name", required=True)
    vtype = p.choice("Type", VOLUME_TYPES, required=True)
    out: dict[str, Any] = {"Name": name, "Type": vtype}
    files: list[dict[str, Any]] = []
    if vtype == "EmptyDirVolume":
        ed = p.obj("EmptyDirVolume")
        if ed is not None:
            out["EmptyDirVolumeMedium"] = ed.choice("Medium", ("", "Memory", "LocalRaid0"), default="") or ""
            out["EmptyDirVolumeSizeLimit"] = ed.text("SizeLimit", default="") or ""
    elif vtype == "NFSVolume":
        nfs = p.obj("NFSVolume")
        if nfs is None:
            raise missing(p.name("NFSVolume.Server"))
        out["NFSVolumeServer"] = nfs.text("Server", required=True)
        out["NFSVolumePath"] = nfs.text("Path", required=True)
        out["NFSVolumeReadOnly"] = bool(nfs.flag("ReadOnly", default=False))
    elif vtype == "ConfigFileVolume":
        cf = p.obj("ConfigFileVolume")
        if cf is None:
            raise missing(p.name("ConfigFileVolume.ConfigFileToPath.1.Path"))
        default_mode = cf.integer("DefaultMode", default=0o644, lo=0, hi=0o777)
        paths = []
        volume_bytes = 0
        for f in cf.objects("ConfigFileToPath"):
            path = f.text("Path", required=True)
            if path.startswith("/") or ".." in path.split("/"):
                raise invalid(f.name("Path"), f'"{path}" must be a relative path without ..')
            content = f.text("Content", default="") or ""
            try:
                size = len(base64.b64decode(content, validate=True))
            except (binascii.Error, ValueError):
                raise invalid(f.name("Content"), "must be base64-encoded file content") from None
            if size > MAX_CONFIG_FILE_BYTES:
                raise invalid(
                    f.name("Content"),
                    f"a ConfigFile volume file may hold at most {MAX_CONFIG_FILE_BYTES // 1024} KB, "
                    f"this one {size} bytes",
                )
            volume_bytes += size
            if volume_bytes > MAX_CONFIG_VOLUME_BYTES:
                raise invalid(
                    f.name("Content"),
                    f"the files of a ConfigFile volume may hold at most {MAX_CONFIG_VOLUME_BYTES // 1024} KB in all",
                )
            mode = f.integer("Mode", default=default_mode, lo=0, hi=0o777)
            paths.append({"Path": path, "Content": content})
            files.append({"Path": path, "Content": content, "Mode": mode})
        out["ConfigFileVolumeConfigFileToPaths"] = paths
    elif vtype == "FlexVolume":
        fv = p.obj("FlexVolume")
        if fv is None:
            raise missing(p.name("FlexVolume.Driver"))
        out["FlexVolumeDriver"] = fv.text("Driver", required=True)
        out["FlexVolumeFsType"] = fv.text("FsType", default="") or ""
        out["FlexVolumeOptions"] = fv.text("Options", default="") or ""
    elif vtype == "DiskVolume":
        dv = p.obj("DiskVolume")
        if dv is None:
            raise missing(p.name("DiskVolume.DiskId"))
        out["DiskVolumeDiskId"] = dv.text("DiskId", required=True)
        out["DiskVolumeFsType"] = dv.text("FsType", default="") or ""
    return out, files


def vswitches(p: Params, settings: Settings) -> list[VSwitch]:
    """VSwitchId: up to 10 comma-separated ids, all known to the VPC."""
    raw = p.text("VSwitchId", required=True)
    ids = [s.strip() for s in raw.split(",") if s.strip()]
    if not ids or len(ids) > 10:
        raise invalid("VSwitchId", f"give 1 to 10 comma-separated vSwitch ids, got {len(ids)}")
    out = []
    for vid in ids:
        vsw = settings.vswitch(vid)
        if vsw is None:
            known = ", ".join(v.id for v in settings.vswitches)
            raise ApiError("InvalidVSwitchId.NotFound", f'The vSwitch "{vid}" does not exist (known: {known}).')
        out.append(vsw)
    return out


def create_request(p: Params, settings: Settings) -> dict[str, Any]:
    """Validate a CreateContainerGroup request; return the normalised group spec (no runtime state)."""
    region = p.text("RegionId", required=True)
    if region != settings.region:
        raise ApiError("InvalidRegionId.NotFound", f'The region "{region}" is not served here; use {settings.region}.')
    name = p.text("ContainerGroupName", required=True)
    if not NAME_RE.match(name):
        raise invalid(
            "ContainerGroupName",
            f'"{name}": 2-128 lowercase letters, digits and hyphens, not starting or ending with a hyphen',
        )
    sg = p.text("SecurityGroupId", required=True)
    if sg not in settings.security_groups:
        raise ApiError("InvalidSecurityGroupId.NotFound", f'The security group "{sg}" does not exist.')
    vsws = vswitches(p, settings)
    token = p.text("ClientToken", max_len=64)
    if token and not token.isascii():
        raise invalid("ClientToken", "must be ASCII")
    volumes: list[dict[str, Any]] = []
    files: dict[str, list[dict[str, Any]]] = {}
    for vp in p.objects("Volume", max_items=MAX_VOLUMES):
        v, f = volume(vp)
        if any(x["Name"] == v["Name"] for x in volumes):
            raise invalid(vp.name("Name"), f'volume name "{v["Name"]}" is repeated')
        volumes.append(v)
        files[v["Name"]] = f
    vnames = {v["Name"] for v in volumes}
    cps = p.objects("Container", max_items=MAX_CONTAINERS)
    if not cps:
        raise missing("Container.1.Name")
    containers = [container(c, vnames, init=False) for c in cps]
    inits = [container(c, vnames, init=True) for c in p.objects("InitContainer", max_items=MAX_CONTAINERS)]
    names = [c["Name"] for c in containers + inits]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise invalid("Container.N.Name", f"container names must be unique, repeated: {', '.join(sorted(dup))}")
    spot = p.choice("SpotStrategy", ("NoSpot", "SpotWithPriceLimit", "SpotAsPriceGo"), default="NoSpot")
    price = p.number("SpotPriceLimit")
    if price is not None and spot != "SpotWithPriceLimit":
        raise invalid("SpotPriceLimit", "only allowed with SpotStrategy=SpotWithPriceLimit")
    if spot == "SpotWithPriceLimit" and price is None:
        raise missing("SpotPriceLimit")
    instance_type = p.text("InstanceType", default="") or ""
    cpu, mem = p.number("Cpu"), p.number("Memory")
    if cpu is None and mem is None and not instance_type:
        cpu = sum(c["Cpu"] for c in containers) or None
        mem = sum(c["Memory"] for c in containers) or None
    if instance_type:
        cpu, mem = cpu or 2.0, mem or 4.0
    else:
        cpu, mem = round_up_spec(cpu if cpu is not None else 2.0, mem if mem is not None else 4.0)
    dns = p.obj("DnsConfig")
    sec = p.obj("SecurityContext")
    return {
        "RegionId": region,
        "ContainerGroupName": name,
        "SecurityGroupId": sg,
        "VSwitchIds": [v.id for v in vsws],
        "ScheduleStrategy": p.choice("ScheduleStrategy", ("VSwitchOrdered", "VSwitchRandom"), default="VSwitchOrdered"),
        "ZoneId": p.text("ZoneId", default="") or "",
        "ClientToken": token or "",
        "RestartPolicy": p.choice("RestartPolicy", ("Always", "Never", "OnFailure"), default="Always"),
        "Cpu": cpu,
        "Memory": mem,
        "InstanceType": instance_type,
        "SpotStrategy": spot,
        "SpotPriceLimit": price or 0.0,
        "AutoCreateEip": bool(p.flag("AutoCreateEip", default=False)),
        "EipInstanceId": p.text("EipInstanceId", default="") or "",
        "RamRoleName": p.text("RamRoleName", default="") or "",
        "ResourceGroupId": p.text("ResourceGroupId", default="") or "",
        "EphemeralStorage": p.integer("EphemeralStorage", default=0, lo=0),
        "ActiveDeadlineSeconds": p.integer("ActiveDeadlineSeconds", default=0, lo=0),
        "DryRun": bool(p.flag("DryRun", default=False)),
        "Tags": tags(p),
        "Containers": containers,
        "InitContainers": inits,
        "Volumes": volumes,
        "VolumeFiles": files,
        "DnsConfig": {
            "NameServers": dns.strings("NameServer") if dns else [],
            "Searches": dns.strings("Search") if dns else [],
            "Options": [
                {"Name": o.text("Name", default=""), "Value": o.text("Value", default="")}
                for o in dns.objects("Option")
            ]
            if dns
            else [],
        },
        "HostAliases": [
            {"Ip": h.text("Ip", required=True), "Hostnames": h.strings("Hostname")} for h in p.objects("HostAliase")
        ],
        "EciSecurityContext": {
            "Sysctls": [
                {"Name": s.text("Name", required=True), "Value": s.text("Value", default="")}
                for s in sec.objects("Sysctl")
            ]
            if sec
            else []
        },
    }
