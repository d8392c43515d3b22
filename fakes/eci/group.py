"""A container group's state and its lifecycle, computed lazily from timestamps on the virtual clock.

Nothing ticks for simulated containers: `Scheduling -> Pending -> Running` is a function of `created`,
`pending_at` and `running_at`, so thousands of command-less groups cost only their dicts. Containers that
run for real (see `runner.py`) record their state in `runtime`, and the group's terminal status follows.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

TERMINAL = frozenset({"Succeeded", "Failed", "Expired", "ScheduleFailed"})


def rfc3339(ts: float | None) -> str:
    """UTC RFC 3339 with seconds, as ECI returns; empty for None."""
    if ts is None:
        return ""
    return _rfc3339_second(int(ts))


@functools.lru_cache(maxsize=4096)
def _rfc3339_second(second: int) -> str:
    # Rendering a group formats a dozen timestamps, mostly the same few seconds: cache them.
    return datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ts: float) -> str:
    """RFC 3339 with nanoseconds, for log timestamps (like the kubelet's)."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int((ts % 1) * 1e9):09d}Z"


@dataclass
class Group:
    """One container group. `spec` is the normalised create request (see spec.py)."""

    id: str
    spec: dict[str, Any]
    zone: str
    vswitch_id: str
    intranet_ip: str
    internet_ip: str
    created: float
    pending_at: float
    running_at: float
    real: list[str] = field(default_factory=list)  # containers (init included) that run as processes
    runtime: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    override: dict[str, Any] | None = None  # {"Status": ScheduleFailed|Expired, "at": ts}
    finished: dict[str, Any] | None = None  # {"Status": Succeeded|Failed, "at": ts}, from real processes
    transient: dict[str, Any] | None = None  # {"Status": Restarting|Updating, "from": ts, "until": ts}
    event_seq: int = 0
    pull_failed: list[str] = field(default_factory=list)  # containers whose image never pulls (a fault)
    # Steered usage (PUT /_fake/groups/{id}/usage), oldest first: {"at": ts, "cpu_nano": n|None, "memory": b|None}.
    usage_steer: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """ContainerGroupName."""
        return str(self.spec["ContainerGroupName"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the state file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Group:
        """Inverse of to_dict."""
        return cls(**data)

    def add_event(self, ts: float, reason: str, message: str, kind: str = "Normal") -> None:
        """Record an event; repeats of the same reason+message fold into Count like Kubernetes events."""
        for e in self.events:
            if e["Reason"] == reason and e["Message"] == message and e["Type"] == kind and e["ts"] <= ts:
                e["Count"] += 1
                e["last"] = ts
                return
        self.event_seq += 1
        self.events.append(
            {
                "ts": ts,
                "last": ts,
                "Type": kind,
                "Reason": reason,
                "Message": message,
                "Count": 1,
                "seq": self.event_seq,
            }
        )

    def all_containers(self) -> list[dict[str, Any]]:
        """Init containers then app containers (specs)."""
        return list(self.spec["InitContainers"]) + list(self.spec["Containers"])


def status_at(g: Group, now: float) -> str:
    """The ECI Status of the group at virtual time `now`."""
    if g.override is not None and now >= g.override["at"]:
        return str(g.override["Status"])
    if g.finished is not None and now >= g.finished["at"]:
        return str(g.finished["Status"])
    if g.transient is not None and g.transient["from"] <= now < g.transient["until"]:
        return str(g.transient["Status"])
    if now < g.pending_at:
        return "Scheduling"
    if now < g.running_at or g.pull_failed:
        return "Pending"
    inits = [c["Name"] for c in g.spec["InitContainers"]]
    if any(not g.runtime.get(n, {}).get("done") for n in inits if n in g.real):
        return "Pending"
    return "Running"


def terminal_at(g: Group) -> float | None:
    """When the group became terminal, if it did."""
    if g.override is not None:
        return float(g.override["at"])
    if g.finished is not None:
        return float(g.finished["at"])
    return None


def last_change(g: Group, now: float) -> float:
    """The most recent status change at or before `now` (drives SinceSecond)."""
    times = [g.created, g.pending_at, g.running_at]
    for rec in (g.override, g.finished):
        if rec is not None:
            times.append(rec["at"])
    if g.transient is not None:
        times += [g.transient["from"], g.transient["until"]]
    for rt in g.runtime.values():
        times += [t for t in (rt.get("start"), rt.get("finish")) if t is not None]
    return max(t for t in times if t <= now) if any(t <= now for t in times) else g.created


def _state(state: str, **kw: Any) -> dict[str, Any]:
    out = {
        "State": state,
        "DetailStatus": kw.get("detail", ""),
        "StartTime": rfc3339(kw.get("start")),
        "FinishTime": rfc3339(kw.get("finish")),
        "ExitCode": int(kw.get("exit_code") or 0),
        "Reason": kw.get("reason", ""),
        "Message": kw.get("message", ""),
        "Signal": int(kw.get("signal") or 0),
    }
    return out


def container_state(g: Group, c: dict[str, Any], now: float, *, init: bool) -> dict[str, Any]:
    """CurrentState/PreviousState/RestartCount/Ready of one container at `now`."""
    name = c["Name"]
    rt = g.runtime.get(name, {})
    status = status_at(g, now)
    previous = rt.get("previous") or {"State": "", "ExitCode": 0}
    restarts = int(rt.get("restarts", 0))
    if name in g.real and rt.get("state"):
        current = _state(
            rt["state"],
            start=rt.get("start"),
            finish=rt.get("finish"),
            exit_code=rt.get("exit_code"),
            reason=rt.get("reason", ""),
            message=rt.get("message", ""),
            signal=rt.get("signal"),
            detail=rt.get("detail", ""),
        )
        if g.override is not None and now >= g.override["at"] and rt["state"] != "Terminated":
            current = _state(
                "Terminated", start=rt.get("start"), finish=g.override["at"], exit_code=137, reason="Error"
            )
    elif name in g.pull_failed and status not in ("Scheduling", "ScheduleFailed"):
        detail = "ImagePullBackOff"
        current = _state("Waiting", reason=detail, detail=detail, message=f'Back-off pulling image "{c["Image"]}"')
    elif status in ("Scheduling", "ScheduleFailed") or now < g.running_at or (name in g.real and not rt.get("state")):
        detail = "ContainerCreating" if status != "ScheduleFailed" else ""
        current = _state("Waiting", reason=detail, detail=detail)
    elif init:
        # A simulated init container completes the moment the group starts its app containers.
        current = _state("Terminated", start=g.running_at, finish=g.running_at, exit_code=0, reason="Completed")
    elif g.override is not None and now >= g.override["at"]:
        current = _state("Terminated", start=g.running_at, finish=g.override["at"], exit_code=137, reason="Error")
    elif g.finished is not None and now >= g.finished["at"]:
        # Only reachable for groups forced terminal through the admin API: simulated containers follow suit.
        ok = g.finished["Status"] == "Succeeded"
        current = _state(
            "Terminated",
            start=g.running_at,
            finish=g.finished["at"],
            exit_code=0 if ok else 1,
            reason="Completed" if ok else "Error",
        )
    else:
        current = _state("Running", start=max(g.running_at, rt.get("start") or 0))
    return {
        "CurrentState": current,
        "PreviousState": previous,
        "RestartCount": restarts,
        "Ready": current["State"] == "Running"
        and status == "Running"
        and (name not in g.real or not c.get("ReadinessProbe") or bool(rt.get("ready"))),
    }
