"""Runs containers that have a real command as local processes, and applies their restart policy.

One reader thread per live process collects its output (stdout and stderr merged, like `kubectl logs`) with
virtual-clock timestamps; everything else happens on the fake's single ticker. Simulated (command-less)
containers never reach this module.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.eci import probes, sandbox
from fakes.eci.cloud import Cloud, argv_of
from fakes.eci.group import TERMINAL, Group, rfc3339, status_at
from fakes.eci.settings import Settings

MAX_LOG_LINES = 20_000  # per container; older lines are dropped like a rotated log
EXEC_TIMEOUT_S = 60.0


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    instance: int
    reader: threading.Thread | None = None
    kill_reason: str | None = None


@dataclass
class _Logs:
    lines: list[tuple[float, bytes, int]] = field(default_factory=list)


class Runner:
    """Processes, sandboxes and logs of real containers. Shares the cloud's lock."""

    def __init__(self, cloud: Cloud, settings: Settings) -> None:
        self.cloud = cloud
        self.settings = settings
        self.own_base = settings.work_dir is None
        self.base = Path(settings.work_dir or tempfile.mkdtemp(prefix="fake-eci-"))
        self.base.mkdir(parents=True, exist_ok=True)
        mode = settings.sandbox
        self.chroot = sandbox.chroot_available() if mode == "auto" else mode == "chroot"
        self.procs: dict[tuple[str, str], _Proc] = {}
        self.logs: dict[tuple[str, str], _Logs] = {}
        self.active: set[str] = set()
        # A fake that is never stopped (a crashed test, a forgotten object) still kills its processes and
        # removes its temp dir at garbage collection or interpreter exit.
        weakref.finalize(self, _cleanup, self.procs, self.base if self.own_base else None)

    # ---- hooks from the cloud ----------------------------------------------------------------------
    def group_created(self, g: Group) -> None:
        """A group with real containers exists: the ticker starts them when it reaches Running."""
        with self.cloud.lock:
            self.active.add(g.id)

    def group_dir(self, gid: str) -> str:
        """Where a group's sandbox lives."""
        return str(self.base / gid)

    def stop_group(self, g: Group) -> None:
        """Kill every process of the group (removed, reclaimed...)."""
        with self.cloud.lock:
            self.active.discard(g.id)
            for (gid, _), p in list(self.procs.items()):
                if gid == g.id:
                    p.kill_reason = p.kill_reason or "Killed"
                    _killpg(p.popen)
        if g.id not in self.cloud.groups:
            safe_rmtree(self.base / g.id)
            with self.cloud.lock:
                for key in [k for k in self.logs if k[0] == g.id]:
                    del self.logs[key]

    def restart_group(self, g: Group) -> None:
        """RestartContainerGroup/UpdateContainerGroup: kill and restart every real container."""
        with self.cloud.lock:
            for name in g.real:
                p = self.procs.get((g.id, name))
                if p is not None:
                    p.kill_reason = "Restarted"
                    _killpg(p.popen)
                rt = g.runtime.setdefault(name, {"restarts": 0})
                if rt.get("state"):
                    rt["previous"] = _snapshot(rt)
                    rt["restarts"] = int(rt.get("restarts", 0)) + 1
                for k in ("state", "next_start", "done", "start", "finish", "exit_code", "reason", "message"):
                    rt.pop(k, None)
                rt["restart_pending"] = True
            if g.real:
                self.active.add(g.id)

    def recover(self) -> None:
        """After loading a state file: processes that were running are gone; apply restart policies."""
        now = self.cloud.clock.now()
        with self.cloud.lock:
            for g in self.cloud.groups.values():
                if not g.real or status_at(g, now) in TERMINAL:
                    continue
                self.active.add(g.id)
                for name, rt in g.runtime.items():
                    if rt.pop("interrupted", False):
                        self._after_exit(g, name, rt, 137, now)

    def kill_container(self, g: Group, name: str, reason: str) -> None:
        """Admin: kill a real container (reason OOMKilled records the OOM event and exit reason)."""
        with self.cloud.lock:
            p = self.procs.get((g.id, name))
            if p is None:
                from fakes.eci.errors import invalid

                raise invalid("ContainerName", f'container "{name}" of {g.id} has no running process')
            p.kill_reason = reason
            _killpg(p.popen)

    def shutdown(self) -> None:
        """Kill everything and wait (bounded) for the readers; remove the work dir if it is ours."""
        with self.cloud.lock:
            procs = list(self.procs.values())
            self.active.clear()
        for p in procs:
            p.kill_reason = p.kill_reason or "Killed"
            _killpg(p.popen)
        for p in procs:
            try:
                p.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if p.reader is not None:
                p.reader.join(timeout=5)
        if self.own_base:
            safe_rmtree(self.base)

    # ---- the ticker --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Start due containers, enforce reclaims, conclude finished groups."""
        now = self.cloud.clock.now()
        with self.cloud.lock:
            for gid in list(self.active):
                g = self.cloud.groups.get(gid)
                if g is None:
                    self.active.discard(gid)
                    continue
                self._tick_group(g, now)

    def _tick_group(self, g: Group, now: float) -> None:
        status = status_at(g, now)
        if g.override is not None and now >= g.override["at"]:  # Expired, ScheduleFailed, deadline exceeded
            self.stop_group(g)
            return
        if status in ("Succeeded", "Failed") or now < g.running_at:
            return
        inits = [c for c in g.spec["InitContainers"] if c["Name"] in g.real]
        for c in inits:
            rt = g.runtime[c["Name"]]
            if rt.get("done"):
                continue
            if (g.id, c["Name"]) not in self.procs and _due(rt, now):
                self._start(g, c, now)
            return  # one init container at a time, in order
        for c in g.spec["Containers"]:
            if c["Name"] not in g.real:
                continue
            rt = g.runtime[c["Name"]]
            if rt.get("done") or (g.id, c["Name"]) in self.procs:
                continue
            if _due(rt, now):
                self._start(g, c, now)
        for c in g.spec["Containers"]:
            if c["Name"] in g.real and (g.id, c["Name"]) in self.procs:
                self._probe(g, c, now)

    def _probe(self, g: Group, c: dict[str, Any], now: float) -> None:
        """Launch the container's due probes (one in flight per kind)."""
        rt = g.runtime[c["Name"]]
        for kind in probes.KINDS:
            spec = c.get(kind)
            if not spec:
                continue
            state = rt.setdefault("probes", {}).setdefault(kind, {"ok": 0, "fail": 0, "busy": False})
            delay, period, timeout, _, _ = probes.settings(spec)
            due = state.get("next", float(rt.get("start") or now) + delay)
            if state["busy"] or now < due:
                continue
            state["busy"] = True
            state["next"] = now + period
            proc = self.procs[(g.id, c["Name"])]
            if self.chroot and not sandbox.entered(proc.popen.pid):
                state["busy"] = False
                state.pop("next", None)
                return  # still setting up its mounts: probing now would probe the host
            threading.Thread(
                target=self._run_probe, args=(g, c["Name"], kind, spec, proc, timeout), daemon=True, name="probe"
            ).start()

    def _run_probe(self, g: Group, name: str, kind: str, spec: dict[str, Any], proc: _Proc, timeout: float) -> None:
        pid = proc.popen.pid if self.chroot else None
        what = probes.argv_for(spec, pid, timeout)
        ok = what is None or probes.run(what, timeout, lambda argv, t: self.exec_sync(g, name, argv, t)[0])
        with self.cloud.lock:
            rt = g.runtime.get(name, {})
            state = rt.get("probes", {}).get(kind)
            if state is None or self.procs.get((g.id, name)) is not proc:
                return  # the container restarted meanwhile: this result is stale
            state["busy"] = False
            _, _, _, success_threshold, failure_threshold = probes.settings(spec)
            now = self.cloud.clock.now()
            if ok:
                state["ok"], state["fail"] = state["ok"] + 1, 0
                if kind == "ReadinessProbe" and state["ok"] >= success_threshold and not rt.get("ready"):
                    rt["ready"] = True
                    self.cloud.dirty = True
                return
            state["ok"], state["fail"] = 0, state["fail"] + 1
            label = "Readiness" if kind == "ReadinessProbe" else "Liveness"
            g.add_event(now, "Unhealthy", f"{label} probe failed", "Warning")
            if state["fail"] < failure_threshold:
                return
            if kind == "ReadinessProbe":
                if rt.get("ready"):
                    rt["ready"] = False
                    self.cloud.dirty = True
                return
            g.add_event(now, "Killing", f"Container {name} failed liveness probe, will be restarted")
            proc.kill_reason = "Liveness"
            _killpg(proc.popen)

    def _start(self, g: Group, c: dict[str, Any], now: float) -> None:
        name = c["Name"]
        rt = g.runtime[name]
        if rt.get("state") == "Terminated":
            rt["previous"] = _snapshot(rt)
            rt["restarts"] = int(rt.get("restarts", 0)) + 1
        rt.pop("restart_pending", None)
        instance = int(rt.get("instance", 0)) + 1
        rt["instance"] = instance
        try:
            popen = self._popen(g, c, argv_of(c))
        except OSError as e:
            rt.update(state="Terminated", start=now, finish=now, exit_code=128, reason="StartError", message=str(e))
            g.add_event(now, "Failed", f"Error: failed to start container {name}: {e}", "Warning")
            self._after_exit(g, name, rt, 128, now, started=False)
            return
        rt.update(state="Running", start=now, finish=None, exit_code=0, reason="", message="", next_start=None)
        rt["probes"] = {}
        rt["ready"] = False
        g.add_event(now, "Created", f"Created container {name}")
        g.add_event(now, "Started", f"Started container {name}")
        proc = _Proc(popen, instance)
        self.procs[(g.id, name)] = proc
        proc.reader = threading.Thread(
            target=self._read, args=(g.id, name, proc), daemon=True, name=f"log-{g.id}-{name}"
        )
        proc.reader.start()
        self.cloud.dirty = True

    def _popen(
        self, g: Group, c: dict[str, Any], argv: Sequence[str], *, tty_fd: int | None = None
    ) -> subprocess.Popen[bytes]:
        gdir = self.base / g.id
        sandbox.materialize_volumes(gdir, g.spec["Volumes"], g.spec.get("VolumeFiles", {}))
        root = gdir / c["Name"] / "root"
        mounts = sandbox.volume_mounts(gdir, c)
        sandbox.prepare_root(root, [(s, p) for s, p, _ in mounts], c.get("WorkingDir", ""))
        sandbox.write_hosts(root, g.name, g.intranet_ip, g.spec.get("HostAliases", []))
        env = sandbox.container_env(c, g.name, g.intranet_ip)
        if self.chroot:
            full = sandbox.chroot_argv(root, mounts, c.get("WorkingDir", ""), argv)
            cwd = str(root)
        else:
            full = list(argv)
            wd = root / c.get("WorkingDir", "").lstrip("/")
            cwd = str(wd if wd.is_dir() else root)
        stdio: dict[str, Any] = (
            {"stdin": tty_fd, "stdout": tty_fd, "stderr": tty_fd}
            if tty_fd is not None
            else {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
        )
        return subprocess.Popen(full, env=env, cwd=cwd, start_new_session=True, **stdio)

    def _read(self, gid: str, name: str, proc: _Proc) -> None:
        out = proc.popen.stdout
        assert out is not None
        # Whatever the process wrote so far is in the log at once, a line without its newline too
        # (as a runtime logs a partial line): readline() would hold it until the process exits.
        # The unfinished line grows in place as the rest of it comes, keeping its first timestamp.
        open_line: tuple[float, bytes, int] | None = None
        while chunk := os.read(out.fileno(), 65536):  # what has come, without waiting for a newline
            ts = self.cloud.clock.now()
            parts = chunk.split(b"\n")
            pieces = [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
            with self.cloud.lock:
                logs = self.logs.setdefault((gid, name), _Logs())
                if open_line is not None and logs.lines and logs.lines[-1] is open_line:
                    logs.lines[-1] = (open_line[0], open_line[1] + pieces.pop(0), proc.instance)
                logs.lines.extend((ts, piece, proc.instance) for piece in pieces)
                last = logs.lines[-1]
                open_line = None if last[1].endswith(b"\n") else last
                if len(logs.lines) > MAX_LOG_LINES:
                    del logs.lines[: len(logs.lines) - MAX_LOG_LINES]
        out.close()
        rc = proc.popen.wait()
        with self.cloud.lock:
            if self.procs.get((gid, name)) is proc:
                del self.procs[(gid, name)]
            g = self.cloud.groups.get(gid)
            if g is None or proc.kill_reason == "Restarted":
                return
            rt = g.runtime[name]
            now = self.cloud.clock.now()
            code = rc if rc >= 0 else 128 - rc  # killed by signal N -> 128+N, like a container runtime
            reason = "Completed" if code == 0 else "Error"
            if proc.kill_reason == "OOMKilled":
                reason = "OOMKilled"
                g.add_event(now, "OOMKilled", f"Container {name} was killed: out of memory", "Warning")
            rt.update(state="Terminated", finish=now, exit_code=code, reason=reason, signal=-rc if rc < 0 else 0)
            if proc.kill_reason in ("Killed",) and status_at(g, now) in TERMINAL:
                rt["done"] = True
                return
            self._after_exit(g, name, rt, code, now)

    def _after_exit(self, g: Group, name: str, rt: dict[str, Any], code: int, now: float, started: bool = True) -> None:
        policy = g.spec["RestartPolicy"]
        is_init = any(c["Name"] == name for c in g.spec["InitContainers"])
        if is_init and policy == "Always":
            policy = "OnFailure"  # init containers never restart after success
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if restart:
            backoff = self.settings.restart_delay_s * (2 ** min(int(rt.get("restarts", 0)), 5))
            rt["next_start"] = now + min(backoff, 300.0)
            if code != 0:
                g.add_event(now, "BackOff", f"Back-off restarting failed container {name}", "Warning")
        else:
            rt["done"] = True
        self.cloud.dirty = True
        self._conclude(g, now)

    def _conclude(self, g: Group, now: float) -> None:
        """A group whose containers all ran for real is Succeeded/Failed once none will run again."""
        inits = [c["Name"] for c in g.spec["InitContainers"] if c["Name"] in g.real]
        for n in inits:
            rt = g.runtime[n]
            if rt.get("done") and rt.get("exit_code"):
                g.finished = {"Status": "Failed", "at": now}
                self.active.discard(g.id)
                return
        mains = [c["Name"] for c in g.spec["Containers"]]
        if not all(n in g.real for n in mains):
            return  # a simulated service keeps the group Running
        if all(g.runtime[n].get("done") for n in mains):
            ok = all(not g.runtime[n].get("exit_code") for n in mains)
            g.finished = {"Status": "Succeeded" if ok else "Failed", "at": now}
            self.active.discard(g.id)

    # ---- what the actions ask ----------------------------------------------------------------------
    def log_lines(self, g: Group, container: str, previous: bool) -> list[tuple[float, bytes]]:
        """Output of the current (or previous) instance of a container."""
        with self.cloud.lock:
            logs = self.logs.get((g.id, container))
            if logs is None:
                return []
            instance = int(g.runtime.get(container, {}).get("instance", 0)) - (1 if previous else 0)
            return [(ts, data) for ts, data, inst in logs.lines if inst == instance]

    def exec_argv(self, g: Group, container: str, argv: Sequence[str]) -> tuple[list[str], dict[str, str], str]:
        """The command line, env and cwd that run `argv` inside the container's sandbox."""
        c = next(x for x in g.all_containers() if x["Name"] == container)
        env = sandbox.container_env(c, g.name, g.intranet_ip)
        with self.cloud.lock:
            p = self.procs.get((g.id, container))
            pid = p.popen.pid if p is not None and p.popen.poll() is None else None
        gdir = self.base / g.id
        sandbox.materialize_volumes(gdir, g.spec["Volumes"], g.spec.get("VolumeFiles", {}))
        root = gdir / container / "root"
        mounts = sandbox.volume_mounts(gdir, c)
        sandbox.prepare_root(root, [(s, mp) for s, mp, _ in mounts], c.get("WorkingDir", ""))
        sandbox.write_hosts(root, g.name, g.intranet_ip, g.spec.get("HostAliases", []))
        if not self.chroot:
            wd = root / c.get("WorkingDir", "").lstrip("/")
            return list(argv), env, str(wd if wd.is_dir() else root)
        if pid is not None and sandbox.entered(pid, wait_s=2.0):
            return sandbox.nsenter_argv(pid, argv), env, str(root)
        return sandbox.chroot_argv(root, mounts, c.get("WorkingDir", ""), argv), env, str(root)

    def exec_sync(
        self, g: Group, container: str, argv: list[str], timeout: float = EXEC_TIMEOUT_S
    ) -> tuple[int, bytes]:
        """Run to completion (bounded by `timeout`); (exit code, stdout+stderr)."""
        full, env, cwd = self.exec_argv(g, container, argv)
        try:
            done = subprocess.run(
                full,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as e:
            return 127, f"exec failed: {e}\n".encode()
        except subprocess.TimeoutExpired as e:
            return 124, (e.output or b"") + b"\nexec timed out\n"
        return done.returncode, done.stdout

    def usage(self, g: Group, container: str) -> tuple[int, int] | None:
        """(nano-cores averaged over the process life, RSS bytes) of a live process, from /proc."""
        with self.cloud.lock:
            p = self.procs.get((g.id, container))
            rt = g.runtime.get(container, {})
        if p is None:
            return None
        try:
            stat = Path(f"/proc/{p.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
            statm = Path(f"/proc/{p.popen.pid}/statm").read_text().split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = (int(stat[11]) + int(stat[12])) / ticks
        alive = max(1e-3, self.cloud.clock.now() - float(rt.get("start") or 0))
        rss = int(statm[1]) * os.sysconf("SC_PAGE_SIZE")
        return int(cpu_s / alive * 1e9), rss

    def popen_interactive(
        self, g: Group, container: str, argv: Sequence[str], tty_fd: int | None
    ) -> subprocess.Popen[bytes]:
        """Start an exec session's process (pipes, or the given pty slave as stdio)."""
        full, env, cwd = self.exec_argv(g, container, argv)
        if tty_fd is not None:
            env = dict(env, TERM="xterm")
            return subprocess.Popen(
                full, env=env, cwd=cwd, stdin=tty_fd, stdout=tty_fd, stderr=tty_fd, start_new_session=True
            )
        return subprocess.Popen(
            full,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )


def _cleanup(procs: dict[tuple[str, str], _Proc], base: Path | None) -> None:
    for p in list(procs.values()):
        _killpg(p.popen)
    if base is not None and base.exists():
        safe_rmtree(base)


def safe_rmtree(path: Path) -> None:
    """Remove a sandbox tree, unless something is mounted under it in *our* namespace.

    Sandboxes bind-mount host /usr etc. only inside their own private mount namespace, so the host never
    sees those mounts; this check makes sure a propagation surprise can never turn into deleting /usr.
    """
    prefix = str(path.resolve()) + "/"
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        mounts = []
    if any(len(f) > 4 and (f[4] + "/").startswith(prefix) for f in (line.split() for line in mounts)):
        print(f"fake-eci: not removing {path}: something is mounted under it", file=sys.stderr, flush=True)
        return
    shutil.rmtree(path, ignore_errors=True)


def _due(rt: dict[str, Any], now: float) -> bool:
    if rt.get("state") is None:
        return True
    nxt = rt.get("next_start")
    return nxt is not None and now >= nxt


def _snapshot(rt: dict[str, Any]) -> dict[str, Any]:
    return {
        "State": "Terminated" if rt.get("state") else "",
        "DetailStatus": "",
        "StartTime": rfc3339(rt.get("start")),
        "FinishTime": rfc3339(rt.get("finish")),
        "ExitCode": int(rt.get("exit_code") or 0),
        "Reason": rt.get("reason", ""),
        "Message": rt.get("message", ""),
        "Signal": int(rt.get("signal") or 0),
    }


def _killpg(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
