"""The admin API under `/_fake/` (JSON, no signature): inspect and steer the fake from tests and demos.

Documented in fakes/README.md. Handlers return (status, body); the server serialises them.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from fakes.eci import metrics, render, spec
from fakes.eci.errors import ApiError
from fakes.eci.faults import FaultError
from fakes.eci.group import status_at
from fakes.eci.params import Params, unflatten

if TYPE_CHECKING:
    from fakes.eci.server import FakeECI


# What `GET /_fake` lists (fakes/README.md, "Admin API", says more about each).
ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("GET /_fake", "this list"),
    ("GET /_fake/health", "ok, number of groups, virtual time, endpoint"),
    ("GET /_fake/groups", "every group as DescribeContainerGroups shows it, plus the fake's internals"),
    ("POST /_fake/groups", "create a group behind the client's back (request-spelled JSON, optional Status)"),
    ("GET /_fake/groups/{id}", "one group"),
    ("DELETE /_fake/groups/{id}", "delete a group behind the client's back"),
    ("POST /_fake/groups/{id}/reclaim", 'spot reclaim: SpotToBeReleased now, Expired after {"after": s}'),
    ("POST /_fake/groups/{id}/containers/{name}/kill", 'kill a real container ({"reason": "OOMKilled"})'),
    ("GET /_fake/calls", "calls by action and outcome"),
    ("POST /_fake/calls/reset", "zero the call counters"),
    ("GET /_fake/faults", "the current fault set"),
    ("PUT /_fake/faults", "change faults (keys not given are kept)"),
    ("GET /_fake/clock", "the virtual clock"),
    ("POST /_fake/clock", '{"advance": seconds}: move the virtual clock forward and run one tick'),
)


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The SDK's flattening rule (lists 1-based, sub-objects dotted, bools True/False)."""
    out: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj, start=1):
            out += flatten(v, f"{prefix}.{i}")
    elif obj is not None:
        out.append((prefix, str(obj)))
    return out


def full_view(fake: FakeECI, gid: str) -> dict[str, Any]:
    """Everything about a group: the API view plus the fake's internals."""
    cloud = fake.cloud
    g = cloud.get(gid)
    now = cloud.clock.now()
    view = render.container_group(g, now, with_event=True)
    view["Fake"] = {
        "RealContainers": list(g.real),
        "ClientToken": g.spec.get("ClientToken", ""),
        "Created": g.created,
        "PendingAt": g.pending_at,
        "RunningAt": g.running_at,
        "Runtime": g.runtime,
        "SandboxDir": fake.runner.group_dir(g.id),
    }
    return view


def handle(fake: FakeECI, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """Route one admin request."""
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError:
        return 400, {"error": "the request body must be JSON"}
    parts = [p for p in path.split("/") if p][1:]  # drop "_fake"
    cloud = fake.cloud
    try:
        if not parts and method == "GET":
            index = [{"endpoint": endpoint, "does": does} for endpoint, does in ENDPOINTS]
            return 200, {"admin_api": fake.admin_url, "endpoints": index, "docs": "fakes/README.md"}
        if parts == ["health"] and method == "GET":
            return 200, {"ok": True, "groups": len(cloud.groups), "now": cloud.clock.now(), "endpoint": fake.endpoint}
        if parts == ["groups"] and method == "GET":
            with cloud.lock:
                return 200, {"groups": [full_view(fake, gid) for gid in list(cloud.groups)]}
        if parts == ["groups"] and method == "POST":
            return 200, _create(fake, data)
        if len(parts) == 2 and parts[0] == "groups":
            gid = parts[1]
            if method == "GET":
                with cloud.lock:
                    return 200, full_view(fake, gid)
            if method == "DELETE":
                cloud.delete(gid)
                return 200, {"deleted": gid}
        if len(parts) == 3 and parts[0] == "groups" and parts[2] == "reclaim" and method == "POST":
            return 200, _reclaim(fake, parts[1], data)
        if len(parts) == 3 and parts[0] == "groups" and parts[2] == "usage" and method == "PUT":
            return _steer_usage(fake, parts[1], data)
        if len(parts) == 5 and parts[0] == "groups" and parts[2] == "containers" and parts[4] == "kill":
            fake.runner.kill_container(cloud.get(parts[1]), parts[3], str(data.get("reason", "Error")))
            return 200, {"killed": parts[3]}
        if parts == ["calls"] and method == "GET":
            return 200, fake.faults.call_counts()
        if parts == ["calls", "log"] and method == "GET":
            return 200, fake.faults.call_log()
        if parts == ["calls", "reset"] and method == "POST":
            fake.faults.reset_calls()
            return 200, fake.faults.call_counts()
        if parts == ["faults"] and method == "GET":
            return 200, _faults_view(fake)
        if parts == ["faults"] and method in ("PUT", "POST"):
            fake.set_faults(data)
            return 200, _faults_view(fake)
        if parts == ["clock"] and method == "GET":
            return 200, {"now": cloud.clock.now(), "offset": cloud.clock.offset}
        if parts == ["clock"] and method == "POST":
            seconds = data.get("advance", 0)
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
                return 400, {"error": "advance must be a number of seconds >= 0"}
            cloud.clock.advance(float(seconds))
            fake.tick()
            return 200, {"now": cloud.clock.now(), "offset": cloud.clock.offset}
    except ApiError as e:
        return e.status, {"error": e.message, "code": e.code}
    except FaultError as e:
        return 400, {"error": str(e)}
    return 404, {"error": f"no admin endpoint {method} {path}; see fakes/README.md"}


def _faults_view(fake: FakeECI) -> dict[str, Any]:
    view = fake.faults.view()
    with fake.cloud.lock:
        view["stock"] = dict(fake.cloud.stock)
    return view


def _create(fake: FakeECI, data: dict[str, Any]) -> dict[str, Any]:
    """Create a group behind the client's back, from request-spelled JSON (e.g. an orphan with tags)."""
    st = fake.cloud.settings
    req = {
        "RegionId": st.region,
        "SecurityGroupId": st.security_groups[0],
        "VSwitchId": st.vswitches[0].id,
        "ContainerGroupName": f"orphan-{secrets.token_hex(4)}",
        "Container": [{"Name": "main", "Image": "nginx"}],
        **data,
    }
    status = req.pop("Status", None)
    p = Params(unflatten(flatten(req)))
    s = spec.create_request(p, st)
    g, _ = fake.cloud.create(s)
    if status:
        with fake.cloud.lock:
            now = fake.cloud.clock.now()
            if status == "Running":
                g.pending_at = g.running_at = now
            elif status in ("Succeeded", "Failed"):
                g.pending_at = g.running_at = now
                g.finished = {"Status": status, "at": now}
            elif status in ("Expired", "ScheduleFailed"):
                g.override = {"Status": status, "at": now}
    return {"ContainerGroupId": g.id, "Status": status_at(g, fake.cloud.clock.now())}


def _reclaim(fake: FakeECI, gid: str, data: dict[str, Any]) -> dict[str, Any]:
    """Spot reclaim: a SpotToBeReleased Warning now, Expired after `after` seconds (default 0)."""
    after = float(data.get("after", 0))
    with fake.cloud.lock:
        g = fake.cloud.get(gid)
        now = fake.cloud.clock.now()
        g.add_event(now, "SpotToBeReleased", "Spot ECI will be released in a few minutes.", "Warning")
        g.override = {"Status": "Expired", "at": now + after}
        fake.cloud.dirty = True
    if after == 0:
        fake.runner.stop_group(g)
    return {"ContainerGroupId": gid, "ExpiresAt": now + after}


def _steer_usage(fake: FakeECI, gid: str, data: dict[str, Any]) -> tuple[int, Any]:
    """Steer what the metric actions report for a group from now on: ``{"cpu": cores, "memory": bytes}``
    for the whole group (split evenly over its containers); a key left out keeps its current value."""
    cpu, memory = data.get("cpu"), data.get("memory")
    for key, value in (("cpu", cpu), ("memory", memory)):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
            return 400, {
                "error": f"{key} must be a number >= 0 ({'cores' if key == 'cpu' else 'bytes'}), got {value!r}"
            }
    if cpu is None and memory is None:
        return 400, {"error": 'give "cpu" (cores) and/or "memory" (bytes), e.g. {"cpu": 0.5, "memory": 134217728}'}
    with fake.cloud.lock:
        g = fake.cloud.get(gid)
        metrics.steer(
            g, fake.cloud.clock.now(), None if cpu is None else float(cpu), None if memory is None else int(memory)
        )
        return 200, {"ContainerGroupId": gid, "usage": g.usage_steer[-1]}
