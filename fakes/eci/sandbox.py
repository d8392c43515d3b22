"""Per-container sandboxes for containers the fake runs for real.

Layout under the fake's work dir: `<group>/volumes/<volume>/` (ConfigFileVolume files written byte-exact
from their base64 content with their modes; EmptyDir and the network/disk volumes as empty dirs) and
`<group>/<container>/root/`, the container's root file system.

Two modes:
* `chroot` (default when running as root and `unshare`/`chroot` exist): the process runs in new mount and
  network namespaces (`unshare -m -n`, loopback only, brought up), with host /usr (and /bin, /lib... as on
  the host) bind-mounted read-only, /dev and /proc, and every volume bind-mounted at its real mount path, then
  `chroot`ed into the root - so `cat /etc/config/key` reads the ConfigMap file.
* `plain` (fallback without root): the process runs on the host with the container's env, in
  `<root>/<WorkingDir>`; volumes are materialised but not at their absolute mount paths.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HOST_DIRS = ("usr", "bin", "lib", "lib64", "sbin")
ETC_FILES = ("passwd", "group", "resolv.conf", "nsswitch.conf")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def chroot_available() -> bool:
    """Whether the namespace+chroot sandbox can be used here."""
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("unshare", "chroot", "mount", "nsenter"))


def materialize_volumes(
    group_dir: Path, volumes: Sequence[dict[str, Any]], files: dict[str, list[dict[str, Any]]]
) -> None:
    """Create `<group>/volumes/<name>` for every volume, writing ConfigFileVolume files (idempotent)."""
    for v in volumes:
        vdir = group_dir / "volumes" / v["Name"]
        if vdir.exists():
            continue
        vdir.mkdir(parents=True, exist_ok=True)
        for f in files.get(v["Name"], []):
            target = vdir / f["Path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(f["Content"]))
            os.chmod(target, int(f["Mode"]))


def write_hosts(root: Path, hostname: str, pod_ip: str, aliases: Sequence[dict[str, Any]]) -> None:
    """/etc/hosts of the sandbox: loopback, the pod's own name and IP, and the group's HostAliases."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod_ip}\t{hostname}"]
    lines += [f"{a['Ip']}\t{' '.join(a.get('Hostnames') or [])}" for a in aliases if a.get("Hostnames")]
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "hosts").write_text("\n".join(lines) + "\n")


def prepare_root(root: Path, mounts: Sequence[tuple[Path, str]], workdir: str) -> None:
    """Create the root skeleton and the mount points (dirs or files, matching their sources)."""
    for d in ("dev", "proc", "tmp", "etc", "root", "var/tmp", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    for name in HOST_DIRS:
        host, mine = Path("/") / name, root / name
        if host.is_symlink():
            if not mine.is_symlink():
                if mine.exists():
                    mine.rmdir()
                with contextlib.suppress(FileExistsError):  # an exec preparing the same root at once
                    mine.symlink_to(os.readlink(host))
        elif host.is_dir():
            mine.mkdir(exist_ok=True)
    for f in ETC_FILES:
        src = Path("/etc") / f
        if src.is_file() and not (root / "etc" / f).exists():
            shutil.copyfile(src, root / "etc" / f)
    for source, mount_path in mounts:
        point = root / mount_path.lstrip("/")
        if source.is_dir():
            point.mkdir(parents=True, exist_ok=True)
        else:
            point.parent.mkdir(parents=True, exist_ok=True)
            point.touch(exist_ok=True)
    if workdir:
        wd = root / workdir.lstrip("/")
        if not str(wd.resolve()).startswith(str(root.resolve())):
            return
        try:
            wd.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # e.g. under the read-only /usr: the container gets an error from cd, like a real one


def volume_mounts(group_dir: Path, c: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """(host source, mount path, read-only) for the container's VolumeMounts (SubPath honoured)."""
    out = []
    for vm in c.get("VolumeMounts", []):
        src = group_dir / "volumes" / vm["Name"]
        if vm.get("SubPath"):
            src = src / vm["SubPath"]
            if not src.exists():
                src.mkdir(parents=True, exist_ok=True)
        out.append((src, vm["MountPath"], bool(vm.get("ReadOnly"))))
    return out


def chroot_argv(root: Path, mounts: Sequence[tuple[Path, str, bool]], workdir: str, argv: Sequence[str]) -> list[str]:
    """`unshare -m -n sh -c <mount script>` that ends by exec'ing `argv` chrooted in `root`."""
    q = shlex.quote
    r = str(root)
    lines = ["set -e", "mount --make-rprivate /"]
    for name in HOST_DIRS:
        host = Path("/") / name
        if host.is_dir() and not host.is_symlink():
            lines.append(f"mount --bind -o ro {q(str(host))} {q(r + '/' + name)}")
    lines.append(f"mount --rbind /dev {q(r + '/dev')}")
    lines.append(f"mount -t proc proc {q(r + '/proc')}")
    for src, path, ro in mounts:
        target = q(r + "/" + path.lstrip("/"))
        lines.append(f"mount --bind {'-o ro ' if ro else ''}{q(str(src))} {target}")
    lines.append("ip link set lo up 2>/dev/null || true")
    inner = 'cd "$0" 2>/dev/null || cd /; exec "$@"'
    lines.append(f'exec chroot {q(r)} /bin/sh -c {q(inner)} {q(workdir or "/")} "$@"')
    return ["unshare", "-m", "-n", "sh", "-c", "\n".join(lines), "sandbox", *argv]


def entered(pid: int, wait_s: float = 0.0) -> bool:
    """Whether a sandboxed process has chrooted (until then, entering its namespaces lands on the host's /)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if os.readlink(f"/proc/{pid}/root") != "/":
                return True
        except OSError:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def nsenter_argv(pid: int, argv: Sequence[str]) -> list[str]:
    """Run `argv` inside a running container's namespaces, root and working directory."""
    return ["nsenter", "-t", str(pid), "-m", "-n", "-r", "-w", *argv]


def container_env(c: dict[str, Any], group_name: str, pod_ip: str) -> dict[str, str]:
    """The process environment: a minimal base plus the container's EnvironmentVars."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": group_name, "HOME": "/root"}
    for e in c.get("EnvironmentVars", []):
        if e.get("ValueFrom", {}).get("FieldRef", {}).get("FieldPath") == "status.podIP":
            env[e["Key"]] = pod_ip
        else:
            env[e["Key"]] = e.get("Value", "")
    return env
