"""The fake cloud's state: container groups, idempotency tokens, IP allocation, stock, persistence.

All mutation happens under one lock; handlers are short (no I/O besides the optional state file, which
is written by the ticker, not on the request path).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import secrets
import shutil
import string
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fakes.eci import errors
from fakes.eci.clock import Clock
from fakes.eci.errors import ApiError
from fakes.eci.group import TERMINAL, Group, last_change, status_at, terminal_at
from fakes.eci.settings import Settings, VSwitch

_ID_CHARS = string.ascii_lowercase + string.digits


def new_group_id() -> str:
    """An id shaped like the real ones (`eci-bp1...`)."""
    return "eci-bp1" + "".join(secrets.choice(_ID_CHARS) for _ in range(17))


def argv_of(c: dict[str, Any]) -> list[str]:
    """Command + args of a container spec (init containers spell it `Command`)."""
    return list(c.get("Commands") or c.get("Command") or []) + list(c.get("Args") or [])


def runs_for_real(c: dict[str, Any]) -> bool:
    """A container runs as a local process when its command names a binary that exists on this host."""
    argv = argv_of(c)
    if not argv:
        return False
    exe = argv[0]
    if exe.startswith("/"):
        return os.path.isfile(exe) and os.access(exe, os.X_OK)
    return shutil.which(exe) is not None


class Cloud:
    """Container groups and everything the actions read or change."""

    def __init__(self, settings: Settings, clock: Clock, state_file: str | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.RLock()
        self.groups: dict[str, Group] = {}
        self.tokens: dict[str, str] = {}
        self.op_tokens: dict[str, float] = {}  # "Action:group:ClientToken" -> when, for idempotent retries
        self.ip_next: dict[str, int] = {}
        self.stock: dict[str, int | None] = {}
        self.stock_mode = "async"
        self.image_pull_errors: list[re.Pattern[str]] = []  # images matching any of these never pull
        self.state_file = state_file
        self.dirty = False
        self.on_created: Callable[[Group], None] | None = None  # the runner's hook for real containers
        self.on_removed: Callable[[Group], None] | None = None
        self._rng = random.Random()
        if state_file and Path(state_file).exists():
            self.load(state_file)

    # ---- persistence -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The JSON-ready state."""
        with self.lock:
            return {
                "version": 1,
                "clock_offset": self.clock.offset,
                "groups": [g.to_dict() for g in self.groups.values()],
                "tokens": dict(self.tokens),
                "op_tokens": dict(self.op_tokens),
                "ip_next": dict(self.ip_next),
            }

    def save(self) -> None:
        """Write the state file atomically (tmp + rename)."""
        if not self.state_file:
            return
        data = self.snapshot()
        self.dirty = False
        path = Path(self.state_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fake-eci-", dir=str(path.parent))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def load(self, state_file: str) -> None:
        """Restore groups from a state file written by `save`."""
        data = json.loads(Path(state_file).read_text(encoding="utf-8"))
        offset = float(data.get("clock_offset", 0.0))
        if offset > self.clock.offset:
            self.clock.advance(offset - self.clock.offset)
        now = self.clock.now()
        for raw in data.get("groups", []):
            g = Group.from_dict(raw)
            # Processes do not survive a restart of the fake: a real container that was running is
            # recorded as killed, and its restart policy decides what happens next (see runner.py).
            for name, rt in g.runtime.items():
                if name in g.real and rt.get("state") == "Running":
                    rt.update(
                        state="Terminated", finish=now, exit_code=137, reason="Error", message="fake ECI restarted"
                    )
                    rt["interrupted"] = True
            self.groups[g.id] = g
        self.tokens = dict(data.get("tokens", {}))
        self.op_tokens = {k: float(v) for k, v in data.get("op_tokens", {}).items()}
        self.ip_next = {k: int(v) for k, v in data.get("ip_next", {}).items()}

    # ---- lookup ------------------------------------------------------------------------------------
    def get(self, group_id: str) -> Group:
        """The group or InvalidParameter.NotFound."""
        g = self.groups.get(group_id)
        if g is None:
            raise errors.not_found(group_id)
        return g

    def matching(
        self,
        *,
        ids: list[str] | None = None,
        name: str | None = None,
        status: str | None = None,
        tags: Iterable[dict[str, str]] = (),
        vswitch: str | None = None,
        zone: str | None = None,
        security_group: str | None = None,
        resource_group: str | None = None,
        since_second: int | None = None,
    ) -> list[Group]:
        """Groups matching every given filter, newest first (stable order for paging)."""
        now = self.clock.now()
        tags = list(tags)
        pool: Iterable[Group] = (
            [self.groups[i] for i in dict.fromkeys(ids) if i in self.groups]
            if ids is not None
            else self.groups.values()
        )
        out = []
        for g in pool:
            s = g.spec
            if name and g.name != name:
                continue
            if vswitch and g.vswitch_id != vswitch:
                continue
            if zone and g.zone != zone:
                continue
            if security_group and s["SecurityGroupId"] != security_group:
                continue
            if resource_group and s["ResourceGroupId"] != resource_group:
                continue
            if tags and not all(_has_tag(s["Tags"], t) for t in tags):
                continue
            if status and status_at(g, now) != status:
                continue
            if since_second is not None and last_change(g, now) < now - since_second:
                continue
            out.append(g)
        out.sort(key=lambda g: (-g.created, g.id))
        return out

    # ---- create ------------------------------------------------------------------------------------
    def _allocate_ip(self, vsw: VSwitch) -> str:
        net = vsw.network()
        n = self.ip_next.get(vsw.id, 10)
        if n >= net.num_addresses - 1:
            n = 10
        self.ip_next[vsw.id] = n + 1
        return str(net.network_address + n)

    def _place(self, spec: dict[str, Any]) -> tuple[VSwitch, bool]:
        """Pick a vSwitch with stock; (first candidate, False) when every zone is out of stock."""
        candidates = [v for v in (self.settings.vswitch(i) for i in spec["VSwitchIds"]) if v is not None]
        if spec["ZoneId"]:
            in_zone = [v for v in candidates if v.zone == spec["ZoneId"]]
            if not in_zone:
                raise errors.invalid("ZoneId", f'none of the vSwitches is in zone "{spec["ZoneId"]}"')
            candidates = in_zone
        if spec["ScheduleStrategy"] == "VSwitchRandom":
            candidates = self._rng.sample(candidates, len(candidates))
        for v in candidates:
            left = self.stock.get(v.zone)
            if left is None:
                return v, True
            if left > 0:
                self.stock[v.zone] = left - 1
                return v, True
        return candidates[0], False

    def create(self, spec: dict[str, Any]) -> tuple[Group, bool]:
        """Create a group from a validated spec; (group, created). Same ClientToken -> same group."""
        with self.lock:
            token = spec.get("ClientToken")
            if token and token in self.tokens and self.tokens[token] in self.groups:
                return self.groups[self.tokens[token]], False
            vsw, has_stock = self._place(spec)
            if not has_stock and self.stock_mode == "sync":
                raise ApiError(
                    "OperationDenied.NoStock",
                    f"The requested resource is sold out in the specified zone(s) {vsw.zone}; try another zone.",
                    403,
                )
            now = self.clock.now()
            st = self.settings
            spec = dict(spec, VpcId=st.vpc_id)
            spec.pop("DryRun", None)
            g = Group(
                id=new_group_id(),
                spec=spec,
                zone=vsw.zone,
                vswitch_id=vsw.id,
                intranet_ip=self._allocate_ip(vsw),
                internet_ip=(f"47.{self._rng.randint(1, 254)}.{self._rng.randint(0, 255)}.{self._rng.randint(1, 254)}")
                if spec["AutoCreateEip"] or spec["EipInstanceId"]
                else "",
                created=now,
                pending_at=now + st.scheduling_delay_s,
                running_at=now + st.scheduling_delay_s + st.pending_delay_s,
            )
            g.pull_failed = [c["Name"] for c in g.all_containers() if _pull_fails(c["Image"], self.image_pull_errors)]
            g.real = [c["Name"] for c in g.all_containers() if runs_for_real(c) and c["Name"] not in g.pull_failed]
            g.runtime = {c["Name"]: {"restarts": 0} for c in g.all_containers()}
            if has_stock:
                plan_start_events(g, g.pending_at, g.running_at)
                deadline = spec.get("ActiveDeadlineSeconds") or 0
                if deadline:
                    # Like a pod's activeDeadlineSeconds: counted from the start, then the group is stopped.
                    g.override = {"Status": "Failed", "at": g.running_at + deadline}
                    g.add_event(
                        g.running_at + deadline,
                        "DeadlineExceeded",
                        f"Pod was active on the node longer than the specified deadline ({deadline} s)",
                        "Warning",
                    )
            else:
                g.override = {"Status": "ScheduleFailed", "at": g.pending_at}
                g.add_event(
                    g.pending_at,
                    "NoStock",
                    f"Create ECI failed because the specified instance is out of stock. zone: {vsw.zone}",
                    "Warning",
                )
            self.groups[g.id] = g
            if token:
                self.tokens[token] = g.id
            self.dirty = True
        if self.on_created is not None and g.real and has_stock:
            self.on_created(g)
        return g, True

    def put(self, g: Group) -> None:
        """Insert a group built elsewhere (the admin API's direct create)."""
        with self.lock:
            self.groups[g.id] = g
            self.dirty = True
        if self.on_created is not None and g.real:
            self.on_created(g)

    def delete(self, group_id: str) -> Group:
        """Remove a group (kills its processes through the runner hook)."""
        with self.lock:
            g = self.get(group_id)
            del self.groups[group_id]
            self.dirty = True
        if self.on_removed is not None:
            self.on_removed(g)
        return g

    def purge_terminal(self) -> int:
        """Retention: terminal groups stay listed for `terminal_retention_s`, then only the newest N per region."""
        now = self.clock.now()
        with self.lock:
            old = []
            for g in self.groups.values():
                at = terminal_at(g)
                if at is not None and status_at(g, now) in TERMINAL and now - at > self.settings.terminal_retention_s:
                    old.append(g)
            old.sort(key=lambda g: -(terminal_at(g) or 0))
            doomed = old[self.settings.terminal_keep :]
            for key, at in list(self.op_tokens.items()):
                if now - at > 24 * 3600:  # ClientTokens are remembered for a day
                    del self.op_tokens[key]
            for g in doomed:
                del self.groups[g.id]
            if doomed:
                self.dirty = True
        for g in doomed:
            if self.on_removed is not None:
                self.on_removed(g)
        return len(doomed)


def _has_tag(tags: list[dict[str, str]], want: dict[str, str]) -> bool:
    return any(t["Key"] == want["Key"] and (not want.get("Value") or t["Value"] == want["Value"]) for t in tags)


def _pull_fails(image: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.search(image) for p in patterns)


def plan_start_events(g: Group, pending_at: float, running_at: float) -> None:
    """Image pull and start events, dated when they will happen (shown once the clock gets there)."""
    step = max(0.0, running_at - pending_at) / 3
    for c in g.all_containers():
        g.add_event(pending_at, "Pulling", f'Pulling image "{c["Image"]}"')
        if c["Name"] in g.pull_failed:
            reason = f'Failed to pull image "{c["Image"]}": rpc error: code = NotFound desc = manifest unknown'
            g.add_event(pending_at + step, "Failed", reason, "Warning")
            g.add_event(pending_at + step, "Failed", "Error: ErrImagePull", "Warning")
            g.add_event(pending_at + 2 * step, "BackOff", f'Back-off pulling image "{c["Image"]}"', "Warning")
            continue
        g.add_event(pending_at + step, "Pulled", f'Successfully pulled image "{c["Image"]}"')
        if c["Name"] not in g.real:
            g.add_event(running_at, "Created", f"Created container {c['Name']}")
            g.add_event(running_at, "Started", f"Started container {c['Name']}")


def encode_token(g: Group) -> str:
    """An opaque NextToken pointing just after `g` in the newest-first order."""
    return base64.urlsafe_b64encode(json.dumps([g.created, g.id]).encode()).decode().rstrip("=")


def page(groups: list[Group], next_token: str | None, limit: int) -> tuple[list[Group], str]:
    """One page of `groups` (already sorted) after `next_token`; returns (items, next token or "")."""
    start = 0
    if next_token:
        try:
            raw = base64.urlsafe_b64decode(next_token + "=" * (-len(next_token) % 4))
            created, gid = json.loads(raw)
            key = (-float(created), str(gid))
        except (ValueError, TypeError):
            raise errors.invalid("NextToken", "not a token returned by a previous call") from None
        start = next((i for i, g in enumerate(groups) if (-g.created, g.id) > key), len(groups))
    items = groups[start : start + limit]
    more = start + limit < len(groups)
    return items, encode_token(items[-1]) if more and items else ""
