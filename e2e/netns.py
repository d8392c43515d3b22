"""Run a command inside a private network namespace: the hermetic network of the tests, bench and demo.

    python -m e2e.netns -- COMMAND [ARG...]

The namespace has one interface, ``lo``, with 127.0.0.1 and :data:`NODE_IP` (10.250.0.1/32) and no route
out, so nothing a test starts can reach another machine, the machine's own interface addresses, or the
Alibaba Cloud metadata service (100.100.100.200). The virtual node's InternalIP is :data:`NODE_IP`: the
API server refuses to proxy (``/api/v1/nodes/<n>/proxy/...``, ``kubectl logs/exec``) to a loopback
address, and 10.250.0.1 is not one, yet it exists only inside the namespace.

Entering it: ``unshare --net`` when root (CI), ``unshare --user --map-root-user --net`` otherwise (a user
namespace in which the developer is root, so that `lo` can be configured; no privilege on the host).
Nothing can be downloaded inside, so builds and installs (``make dev``, ``python -m e2e.build``) run
before. The namespace lives as long as COMMAND and its children; it is never shared with another run.

Inside, :data:`MARKER` (=``NODE_IP``) and ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`` are set in the
environment; :func:`problems` tells a test whether it really runs in such a namespace.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import struct
import sys

NODE_IP = "10.250.0.1"
LOOPBACK = "127.0.0.1"
MARKER = "VKECI_NETNS"
# The credential chain reads this when it is imported; with it the ECS RAM-role provider (which asks
# 100.100.100.200 for credentials) is left out of the chain.
METADATA_DISABLED = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
# TEST-NET-1 (RFC 5737): an address outside the namespace used only to ask the kernel for a route.
_OUTSIDE = "192.0.2.1"
HOW_TO_RUN = (
    "run the tests through the hermetic harness: `make test` / `make unit` / `make e2e` "
    "(one file: `make unit PYTEST_ARGS=tests/unit/test_config.py`), or by hand "
    "`.venv/bin/python -m e2e.netns -- .venv/bin/python -m pytest ...` (after `make dev`; for e2e tests "
    "also `.venv/bin/python -m e2e.build`, which needs the network)"
)

# <linux/sockios.h> and <linux/if.h>
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _SIOCSIFADDR, _SIOCSIFNETMASK = 0x8913, 0x8914, 0x8916, 0x891C
_IFF_UP = 0x1


def unshare_command() -> list[str]:
    """The `unshare` invocation that makes a new network namespace for this user."""
    if shutil.which("unshare") is None:
        raise SystemExit("e2e.netns: `unshare` (util-linux) is not installed; the hermetic test network needs it")
    if os.geteuid() == 0:
        return ["unshare", "--net"]
    return ["unshare", "--user", "--map-root-user", "--net"]


def _ifreq_addr(name: str, address: str) -> bytes:
    # struct ifreq { char ifr_name[16]; struct sockaddr_in ifr_addr; } padded to 40 bytes.
    return struct.pack("16sH2s4s8s", name.encode(), socket.AF_INET, b"\0\0", socket.inet_aton(address), b"\0" * 8)


def configure_loopback() -> None:
    """Inside a fresh namespace: bring ``lo`` up and add NODE_IP/32 to it (as the label ``lo:vk``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fd = sock.fileno()
        flags = struct.unpack("16sH", fcntl.ioctl(fd, _SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0))[:18])[1]
        fcntl.ioctl(fd, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP).ljust(40, b"\0"))
        # An address set on an alias label is added beside 127.0.0.1 (on "lo" it would replace it).
        fcntl.ioctl(fd, _SIOCSIFADDR, _ifreq_addr("lo:vk", NODE_IP))
        fcntl.ioctl(fd, _SIOCSIFNETMASK, _ifreq_addr("lo:vk", "255.255.255.255"))


def problems() -> list[str]:
    """Why this process is not inside a hermetic namespace made by this module (empty: it is)."""
    found = []
    if not inside():
        found.append(f"{MARKER} is not {NODE_IP}: the run did not enter the namespace through e2e.netns")
    for name, value in METADATA_DISABLED.items():
        if os.environ.get(name) != value:
            found.append(f"{name} is not {value!r}: the credential chain could ask 100.100.100.200")
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        found.append(f"network interfaces {interfaces}, expected only ['lo']: this is not a private namespace")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((_OUTSIDE, 9))  # UDP connect only looks up a route; it sends nothing
        except OSError as exc:
            if exc.errno != errno.ENETUNREACH:
                found.append(f"a route lookup for {_OUTSIDE} failed with {exc!r}, expected ENETUNREACH")
        else:
            found.append(f"{_OUTSIDE} is routable: traffic could leave the machine")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        try:
            listener.bind((NODE_IP, 0))
        except OSError as exc:
            found.append(f"{NODE_IP} is not an address of this namespace ({exc})")
    return found


def inside() -> bool:
    """True when this process runs in a namespace that e2e.netns set up (checked in full by :func:`problems`)."""
    return os.environ.get(MARKER) == NODE_IP


def node_ip() -> str:
    """The virtual node's InternalIP for a daemon started by the harness: :data:`NODE_IP` inside the
    namespace (the API server can proxy to it), else loopback (no node proxy: `kubectl logs/exec` fail)."""
    return NODE_IP if inside() else LOOPBACK


def main(argv: list[str]) -> int:
    """``[--inside] [--] COMMAND...``: enter a new namespace (or, with --inside, set it up) and exec COMMAND."""
    setting_up = argv[:1] == ["--inside"]
    command = argv[1:] if setting_up else argv
    command = command[1:] if command[:1] == ["--"] else command
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    env = {**os.environ, **METADATA_DISABLED}
    if setting_up:
        configure_loopback()
        env[MARKER] = NODE_IP
    elif not (inside() and not problems()):  # not already inside (make from make)
        # The file itself, not `-m e2e.netns`: it needs only the standard library and any working directory.
        command = [*unshare_command(), "--", sys.executable, os.path.abspath(__file__), "--inside", "--", *command]
    os.execvpe(command[0], command, env)
    return 0  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
