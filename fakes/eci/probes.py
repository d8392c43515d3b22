"""Readiness and liveness probes of containers that run for real (Exec, TcpSocket, HttpGet).

Scheduled on the virtual clock by the runner's ticker (first after InitialDelaySeconds, then every
PeriodSeconds); each probe runs in its own short-lived thread so a slow probe never blocks the ticker.
Exec probes run inside the container's sandbox; TCP and HTTP probes connect from inside the container's
network namespace (its loopback), using this Python interpreter under `nsenter -n`.
Simulated containers are never probed: they are Ready as soon as they run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

KINDS = ("ReadinessProbe", "LivenessProbe")

_TCP = (
    "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()"
)
_HTTP = (
    "import sys,urllib.request,urllib.error\n"
    "try:\n"
    "    code = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).status\n"
    "except urllib.error.HTTPError as e:\n"
    "    code = e.code\n"
    "sys.exit(0 if 200 <= code < 400 else 1)\n"
)


def settings(probe: dict[str, Any]) -> tuple[float, float, float, int, int]:
    """(initial delay, period, timeout, success threshold, failure threshold) with Kubernetes defaults."""
    return (
        float(probe.get("InitialDelaySeconds") or 0),
        float(probe.get("PeriodSeconds") or 10),
        float(probe.get("TimeoutSeconds") or 1),
        int(probe.get("SuccessThreshold") or 1),
        int(probe.get("FailureThreshold") or 3),
    )


def argv_for(probe: dict[str, Any], pid: int | None, timeout: float) -> tuple[str, list[str]] | None:
    """("exec", argv) to run in the sandbox, or ("host", argv) to run as is; None if the probe is empty."""
    if probe.get("Execs"):
        return "exec", list(probe["Execs"])
    enter = ["nsenter", "-t", str(pid), "-n"] if pid is not None else []
    if probe.get("TcpSocket"):
        t = probe["TcpSocket"]
        return "host", [*enter, sys.executable, "-c", _TCP, t.get("Host") or "127.0.0.1", str(t["Port"]), str(timeout)]
    if probe.get("HttpGet"):
        h = probe["HttpGet"]
        scheme = (h.get("Scheme") or "HTTP").lower()
        path = h.get("Path") or "/"
        url = f"{scheme}://127.0.0.1:{h['Port']}{path if path.startswith('/') else '/' + path}"
        return "host", [*enter, sys.executable, "-c", _HTTP, url, str(timeout)]
    return None


def run(kind_argv: tuple[str, list[str]], timeout: float, exec_sync: Callable[[list[str], float], int]) -> bool:
    """Run one probe; True on success."""
    kind, argv = kind_argv
    if kind == "exec":
        return exec_sync(argv, timeout) == 0
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 2, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
