"""The ECI actions: parameter validation and response bodies (eci-openapi.md §2.2, §4.2, §5.4).

Each handler takes the request context and the parameter tree and returns the response dict (without
RequestId, added by the server). Errors are raised as `ApiError`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from fakes.eci import errors, metrics, render, spec
from fakes.eci.cloud import Cloud, page, plan_start_events
from fakes.eci.errors import ApiError, invalid
from fakes.eci.group import Group, rfc3339, rfc3339_nano, status_at
from fakes.eci.params import Params


class Runtime(Protocol):
    """What the actions need from the process runner (runner.py)."""

    def log_lines(self, g: Group, container: str, previous: bool) -> list[tuple[float, bytes]]: ...

    def exec_sync(self, g: Group, container: str, argv: list[str]) -> tuple[int, bytes]: ...

    def usage(self, g: Group, container: str) -> tuple[int, int] | None: ...

    def restart_group(self, g: Group) -> None: ...


@dataclass
class Context:
    """Everything a handler may touch."""

    cloud: Cloud
    runtime: Runtime
    base_ws_url: str = ""
    exec_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)


Handler = Callable[[Context, Params], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}

# Actions the SDK has but the fake does not implement: answered with a clear error, not "unknown action".
SDK_ONLY = frozenset(
    "CommitContainer CopyDataCache CreateDataCache CreateImageCache CreateInstanceOpsTask CreateVirtualNode "
    "DeleteDataCache DeleteImageCache DeleteVirtualNode DescribeAvailableResource DescribeCommitContainerTask "
    "DescribeContainerGroupPrice DescribeDataCaches DescribeImageCaches DescribeInstanceOpsRecords "
    "DescribeVirtualNodes ListTagResources ListUsage ResizeContainerGroupVolume TagResources UntagResources "
    "UpdateDataCache UpdateImageCache UpdateVirtualNode".split()
)


def action(name: str) -> Callable[[Handler], Handler]:
    """Register a handler under its action name."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return deco


def _region(ctx: Context, p: Params) -> str:
    region = p.text("RegionId", required=True)
    if region != ctx.cloud.settings.region:
        raise ApiError(
            "InvalidRegionId.NotFound", f'The region "{region}" is not served here; use {ctx.cloud.settings.region}.'
        )
    return str(region)


def _parse_time(p: Params, key: str) -> float | None:
    v = p.text(key)
    if not v:
        return None
    try:
        return datetime.strptime(v.replace(".000", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise invalid(key, f'"{v}" is not an RFC 3339 UTC time such as 2026-01-01T00:00:00Z') from None


# ---- create / describe / delete ---------------------------------------------------------------------
@action("CreateContainerGroup")
def create_container_group(ctx: Context, p: Params) -> dict[str, Any]:
    """Validate and create; ClientToken makes retries return the same id."""
    s = spec.create_request(p, ctx.cloud.settings)
    if s["DryRun"]:
        raise ApiError("DryRunOperation", "Request validation has been passed with DryRun flag set.", 400)
    g, _ = ctx.cloud.create(s)
    return {"ContainerGroupId": g.id}


@action("DescribeContainerGroups")
def describe_container_groups(ctx: Context, p: Params) -> dict[str, Any]:
    """Filter by ids (JSON ≤20), name, status, tags, vSwitch, zone...; Limit ≤20 with NextToken."""
    _region(ctx, p)
    ids = p.json_list("ContainerGroupIds", max_items=20)
    limit = p.integer("Limit", default=20, lo=1, hi=20)
    with_event = p.flag("WithEvent", default=True)
    with ctx.cloud.lock:
        groups = ctx.cloud.matching(
            ids=ids,
            name=p.text("ContainerGroupName"),
            status=p.text("Status"),
            tags=spec.tag_filters(p),
            vswitch=p.text("VSwitchId"),
            zone=p.text("ZoneId"),
            security_group=p.text("SecurityGroupId"),
            resource_group=p.text("ResourceGroupId"),
        )
        items, token = page(groups, p.text("NextToken"), limit)
        now = ctx.cloud.clock.now()
        body = [render.container_group(g, now, with_event=with_event) for g in items]
    return {"TotalCount": len(groups), "NextToken": token, "ContainerGroups": body}


@action("DescribeContainerGroupStatus")
def describe_container_group_status(ctx: Context, p: Params) -> dict[str, Any]:
    """Batch status by ids or tags; SinceSecond returns groups whose status changed recently."""
    _region(ctx, p)
    ids = p.json_list("ContainerGroupIds", max_items=20)
    limit = p.integer("Limit", default=200, lo=1, hi=200)
    since = p.integer("SinceSecond", lo=0)
    with ctx.cloud.lock:
        groups = ctx.cloud.matching(
            ids=ids,
            tags=spec.tag_filters(p),
            vswitch=p.text("VSwitchId"),
            zone=p.text("ZoneId"),
            resource_group=p.text("ResourceGroupId"),
            since_second=since,
        )
        items, token = page(groups, p.text("NextToken"), limit)
        now = ctx.cloud.clock.now()
        data = [render.status_item(g, now) for g in items]
    return {"TotalCount": len(groups), "NextToken": token, "Data": data}


@action("DescribeContainerGroupEvents")
def describe_container_group_events(ctx: Context, p: Params) -> dict[str, Any]:
    """Events of groups by ids or tags (SinceSecond: groups with events that recent)."""
    _region(ctx, p)
    ids = p.json_list("ContainerGroupIds", max_items=20)
    limit = p.integer("Limit", default=200, lo=1, hi=200)
    since = p.integer("SinceSecond", lo=0)
    with ctx.cloud.lock:
        groups = ctx.cloud.matching(
            ids=ids, tags=spec.tag_filters(p), vswitch=p.text("VSwitchId"), zone=p.text("ZoneId")
        )
        now = ctx.cloud.clock.now()
        if since is not None:
            groups = [g for g in groups if any(now - since <= e.get("last", e["ts"]) <= now for e in g.events)]
        items, token = page(groups, p.text("NextToken"), limit)
        data = [render.events_item(g, now) for g in items]
    return {"TotalCount": len(groups), "NextToken": token, "Data": data}


def _replayed(ctx: Context, action_name: str, p: Params) -> str | None:
    """The key under which a ClientToken'd call was done already (None: no token or first time)."""
    token = p.text("ClientToken", max_len=64)
    if not token:
        return None
    key = f"{action_name}:{p.text('ContainerGroupId')}:{token}"
    return key if key in ctx.cloud.op_tokens else None


def _remember(ctx: Context, action_name: str, p: Params) -> None:
    token = p.text("ClientToken")
    if token:
        with ctx.cloud.lock:
            ctx.cloud.op_tokens[f"{action_name}:{p.text('ContainerGroupId')}:{token}"] = ctx.cloud.clock.now()
            ctx.cloud.dirty = True


@action("DeleteContainerGroup")
def delete_container_group(ctx: Context, p: Params) -> dict[str, Any]:
    """Delete a group; its processes are killed. A retry with the same ClientToken succeeds again."""
    _region(ctx, p)
    gid = p.text("ContainerGroupId", required=True)
    if _replayed(ctx, "DeleteContainerGroup", p):
        return {}
    ctx.cloud.delete(gid)
    _remember(ctx, "DeleteContainerGroup", p)
    return {}


@action("RestartContainerGroup")
def restart_container_group(ctx: Context, p: Params) -> dict[str, Any]:
    """Restart a Running group: Restarting for the pending delay, containers restarted (counts +1)."""
    _region(ctx, p)
    gid = p.text("ContainerGroupId", required=True)
    if _replayed(ctx, "RestartContainerGroup", p):
        return {}
    with ctx.cloud.lock:
        g = ctx.cloud.get(gid)
        now = ctx.cloud.clock.now()
        status = status_at(g, now)
        if status != "Running":
            raise errors.incorrect_status(gid, status, "RestartContainerGroup")
        _restart(ctx, g, now, "Restarting")
    ctx.runtime.restart_group(g)
    _remember(ctx, "RestartContainerGroup", p)
    return {}


def _restart(ctx: Context, g: Group, now: float, transient: str) -> None:
    delay = ctx.cloud.settings.pending_delay_s
    for c in g.all_containers():
        rt = g.runtime.setdefault(c["Name"], {"restarts": 0})
        if c["Name"] not in g.real:
            rt["previous"] = {
                "State": "Terminated",
                "StartTime": rfc3339(max(g.running_at, rt.get("start") or 0)),
                "FinishTime": rfc3339(now),
                "ExitCode": 0,
                "Reason": "Completed",
                "Message": "",
                "DetailStatus": "",
                "Signal": 0,
            }
            rt["start"] = now + delay
            rt["restarts"] = int(rt.get("restarts", 0)) + 1
    g.transient = {"Status": transient, "from": now, "until": now + delay}
    g.pending_at = now
    g.running_at = now + delay
    g.finished = None
    plan_start_events(g, now, now + delay)
    ctx.cloud.dirty = True


@action("UpdateContainerGroup")
def update_container_group(ctx: Context, p: Params) -> dict[str, Any]:
    """Update tags, restart policy, size or containers (IncrementalUpdate merges by container name)."""
    _region(ctx, p)
    gid = p.text("ContainerGroupId", required=True)
    update_type = p.choice("UpdateType", ("RenewUpdate", "IncrementalUpdate"), default="RenewUpdate")
    if _replayed(ctx, "UpdateContainerGroup", p):
        return {}
    with ctx.cloud.lock:
        g = ctx.cloud.get(gid)
        now = ctx.cloud.clock.now()
        status = status_at(g, now)
        if status not in ("Running", "Pending"):
            raise errors.incorrect_status(gid, status, "UpdateContainerGroup")
        s = g.spec
        new_tags = spec.tags(p) if p.has("Tag") else None
        policy = p.choice("RestartPolicy", ("Always", "Never", "OnFailure"))
        cpu, mem = p.number("Cpu"), p.number("Memory")
        vnames = {v["Name"] for v in s["Volumes"]}
        containers = [spec.container(c, vnames, init=False) for c in p.objects("Container", max_items=20)]
        if new_tags is not None:
            s["Tags"] = new_tags if update_type == "RenewUpdate" else _merge_tags(s["Tags"], new_tags)
        if policy:
            s["RestartPolicy"] = policy
        if cpu is not None or mem is not None:
            s["Cpu"], s["Memory"] = spec.round_up_spec(cpu or s["Cpu"], mem or s["Memory"])
        if containers:
            by_name = {c["Name"]: c for c in s["Containers"]}
            for c in containers:
                if c["Name"] not in by_name:
                    raise invalid("Container.N.Name", f'no container named "{c["Name"]}" in {gid}')
                by_name[c["Name"]].update({k: v for k, v in c.items() if v not in (None, [], "", 0.0)})
            _restart(ctx, g, now, "Updating")
    if containers:
        ctx.runtime.restart_group(g)
    _remember(ctx, "UpdateContainerGroup", p)
    return {}


def _merge_tags(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    merged = {t["Key"]: t["Value"] for t in old}
    merged.update({t["Key"]: t["Value"] for t in new})
    if len(merged) > spec.MAX_TAGS:
        raise invalid("Tag", f"a group can have at most {spec.MAX_TAGS} tags")
    return [{"Key": k, "Value": v} for k, v in merged.items()]


@action("DescribeRegions")
def describe_regions(ctx: Context, p: Params) -> dict[str, Any]:
    """The one region the fake serves, with its zones."""
    st = ctx.cloud.settings
    zones = sorted({v.zone for v in st.vswitches})
    return {
        "Regions": [
            {"RegionId": st.region, "RegionEndpoint": "eci.aliyuncs.com", "Zones": zones, "RecommendZones": zones}
        ]
    }


# ---- logs / exec / metrics --------------------------------------------------------------------------
def _container_of(g: Group, name: str) -> dict[str, Any]:
    for c in g.all_containers():
        if c["Name"] == name:
            return c
    raise invalid("ContainerName", f'no container named "{name}" in {g.id}')


@action("DescribeContainerLog")
def describe_container_log(ctx: Context, p: Params) -> dict[str, Any]:
    """Real output for real containers (simulated ones have none): Tail, SinceSeconds, StartTime, LimitBytes,
    Timestamps and LastTime (the previous instance) like `kubectl logs`."""
    _region(ctx, p)
    gid = p.text("ContainerGroupId", required=True)
    name = p.text("ContainerName", required=True)
    tail = p.integer("Tail", default=500, lo=0, hi=2000)
    since = p.integer("SinceSeconds", lo=1)
    start = _parse_time(p, "StartTime")
    limit = p.integer("LimitBytes", lo=1, hi=1048576)
    stamps = p.flag("Timestamps", default=False)
    previous = p.flag("LastTime", default=False)
    with ctx.cloud.lock:
        g = ctx.cloud.get(gid)
        _container_of(g, name)
        now = ctx.cloud.clock.now()
    lines = ctx.runtime.log_lines(g, name, bool(previous))
    if since is not None:
        lines = [ln for ln in lines if ln[0] >= now - since]
    if start is not None:
        lines = [ln for ln in lines if ln[0] >= start]
    lines = lines[-tail:] if tail else []
    out = b"".join((rfc3339_nano(ts).encode() + b" " if stamps else b"") + data for ts, data in lines)
    cap = min(limit or 1048576, 1048576)
    content = out[:cap].decode("utf-8", errors="replace")
    return {"ContainerName": name, "Content": content}


@action("ExecContainerCommand")
def exec_container_command(ctx: Context, p: Params) -> dict[str, Any]:
    """Sync=true runs the command and returns its output; otherwise a one-time WebSocket URI (30 s)."""
    _region(ctx, p)
    gid = p.text("ContainerGroupId", required=True)
    name = p.text("ContainerName", required=True)
    argv = p.json_list("Command", max_items=20, required=True) or []
    if not argv:
        raise invalid("Command", 'give at least one word, e.g. ["sh","-c","ls"]')
    for i, word in enumerate(argv):
        if len(word) > 256:
            raise invalid("Command", f"item {i + 1} is {len(word)} characters; at most 256 are allowed")
    sync = p.flag("Sync", default=False)
    tty = p.flag("TTY", default=False)
    stdin = p.flag("Stdin", default=True)
    if sync and tty:
        raise invalid("TTY", "must be false when Sync is true")
    if sync and argv[0] in ("/bin/bash", "bash", "/bin/sh", "sh") and len(argv) == 1:
        raise invalid("Command", "an interactive shell cannot run with Sync=true")
    with ctx.cloud.lock:
        g = ctx.cloud.get(gid)
        _container_of(g, name)
        status = status_at(g, ctx.cloud.clock.now())
    if status != "Running":
        raise errors.incorrect_status(gid, status, "ExecContainerCommand")
    if sync:
        _, output = ctx.runtime.exec_sync(g, name, argv)
        return {"HttpUrl": "", "WebSocketUri": "", "SyncResponse": output.decode("utf-8", errors="replace")}
    token = secrets.token_urlsafe(24)
    ctx.exec_tokens[token] = {
        "group": gid,
        "container": name,
        "argv": argv,
        "tty": bool(tty),
        "stdin": bool(stdin),
        "expires": ctx.cloud.clock.now() + ctx.cloud.settings.exec_token_ttl_s,
    }
    uri = f"{ctx.base_ws_url}/_exec/{token}"
    return {"HttpUrl": uri.replace("ws://", "http://", 1), "WebSocketUri": uri}


@action("DescribeContainerGroupMetric")
def describe_container_group_metric(ctx: Context, p: Params) -> dict[str, Any]:
    """CPU/memory series; real /proc figures for the live sample of real processes, synthetic otherwise."""
    _region(ctx, p)
    gid = p.text("ContainerGroupId", required=True)
    start, end = _parse_time(p, "StartTime"), _parse_time(p, "EndTime")
    period = p.integer("Period", default=60)
    if period not in (15, 30, 60, 600):
        raise invalid("Period", f"{period} is not one of 15, 30, 60, 600")
    now = ctx.cloud.clock.now()
    if start is not None and start < now - 30 * 86400:
        raise invalid("StartTime", "must be within the last 30 days")
    if start is not None and end is not None and end < start:
        raise invalid("EndTime", "must not be before StartTime")
    with ctx.cloud.lock:
        g = ctx.cloud.get(gid)
    return {
        "ContainerGroupId": gid,
        "Records": metrics.series(g, ctx.cloud.clock.now(), start, end, period, ctx.runtime.usage),
    }


@action("DescribeMultiContainerGroupMetric")
def describe_multi_container_group_metric(ctx: Context, p: Params) -> dict[str, Any]:
    """The latest sample(s) for up to 20 groups (MetricType=summary)."""
    _region(ctx, p)
    ids = p.json_list("ContainerGroupIds", max_items=20, required=True) or []
    with ctx.cloud.lock:
        groups = [ctx.cloud.groups[i] for i in ids if i in ctx.cloud.groups]
    now = ctx.cloud.clock.now()
    datas = []
    for g in groups:
        recs = metrics.series(g, now, now - 60, now, 15, ctx.runtime.usage)
        datas.append({"ContainerGroupId": g.id, "Records": recs[-1:]})
    return {"MonitorDatas": datas}


def dispatch(ctx: Context, name: str, p: Params) -> dict[str, Any]:
    """Run action `name`; unknown and unimplemented actions get distinct errors."""
    handler = HANDLERS.get(name)
    if handler is None:
        if name in SDK_ONLY:
            raise ApiError("UnsupportedOperation", f"The fake ECI does not implement {name}.", 400)
        raise ApiError(
            "InvalidAction.NotFound", f'Specified api "{name}" is not found, please check your url and method.', 404
        )
    return handler(ctx, p)


def json_dumps(obj: Any) -> bytes:
    """Compact JSON for replies."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
