"""Build the two Go peers of `make bench-peer` (issue 18) once, and cache them outside the repository.

- **The peer**: virtual-kubelet v1.13.0 with its mock provider, from the Go module proxy. Its ``main`` lives
  under ``cmd/virtual-kubelet`` and imports ``internal/`` packages, so it is built inside a writable copy of
  the module, patched first with ``e2e/peer/virtual-kubelet-v1.13.0.patch`` (our diff: client QPS and the
  global workqueue limiter lifted, the mock's pod map guarded; the patch's header says why)::

    ~/.cache/vkeci/vk-peer-v1.13.0-<hash>/virtual-kubelet   the binary
    ~/.cache/vkeci/vk-peer-v1.13.0-<hash>/src/              the patched copy it was built from
    ~/.cache/vkeci/vk-peer-v1.13.0-<hash>/build.log

- **The floor**: ``e2e/peer/floor`` (our code): the least a kubelet does for a pod::

    ~/.cache/vkeci/vk-floor-<hash>/floor

Each directory is keyed by a hash of what determines the binary (version, patch, sources, flags) and built
under a file lock (``e2e.build.build_lock``), like the control plane. ``python -m e2e.peer_build`` builds
both (or reports the cached ones).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from e2e.build import BuildError, build_jobs, cache_root, ensure_built, go_build, go_env

PEER_DIR = Path(__file__).resolve().parent / "peer"
FLOOR_DIR = PEER_DIR / "floor"
VK_MODULE = "github.com/virtual-kubelet/virtual-kubelet"
VK_VERSION = "v1.13.0"
# The module's go.sum hash (`go mod download -json` reports it as Sum). sum.golang.org is out of reach on
# the build machines, so the download skips it for this one module and is checked against this instead.
VK_SUM = "h1:5DrFSK7bLY6L/w0qVIjdpVxs2jRNiM3+sy2NLgJufIg="
VK_PATCH = PEER_DIR / f"virtual-kubelet-{VK_VERSION}.patch"
VK_MAIN = "./cmd/virtual-kubelet"
LDFLAGS = "-s -w"
Say = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _build_flags() -> list[str]:
    return ["-trimpath", "-p", str(build_jobs()), "-ldflags", LDFLAGS]


def _hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part + b"\0")
    return h.hexdigest()[:16]


def peer_dir() -> Path:
    """The cache directory of the patched virtual-kubelet for the current patch."""
    key = _hash(VK_MODULE.encode(), VK_VERSION.encode(), VK_SUM.encode(), VK_PATCH.read_bytes(), LDFLAGS.encode())
    return cache_root() / f"vk-peer-{VK_VERSION}-{key}"


def floor_dir() -> Path:
    """The cache directory of the floor client for the current sources."""
    files = sorted(p for p in FLOOR_DIR.iterdir() if p.is_file() and (p.suffix == ".go" or p.name.startswith("go.")))
    key = _hash(*(p.name.encode() + b"=" + p.read_bytes() for p in files), LDFLAGS.encode())
    return cache_root() / f"vk-floor-{key}"


def ensure_peer(progress: Say | None = None) -> Path:
    """The patched virtual-kubelet binary (mock provider), built first if needed; raises ``BuildError``."""
    say = progress or _stderr
    target = peer_dir()
    binary = target / "virtual-kubelet"
    return ensure_built(binary, "peer", lambda: _build_peer(target, binary, say), say)


def ensure_floor(progress: Say | None = None) -> Path:
    """The floor client binary, built first if needed; raises ``BuildError``."""
    say = progress or _stderr
    target = floor_dir()
    binary = target / "floor"
    return ensure_built(binary, "floor", lambda: _build_floor(target, binary, say), say)


def _build_floor(target: Path, binary: Path, say: Say) -> None:
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "floor.partial"
    say(f"floor: building {FLOOR_DIR} into {target}")
    cmd = ["go", "build", *_build_flags(), "-o", str(partial), "."]
    elapsed = go_build(cmd, FLOOR_DIR, target / "build.log", "floor", say)
    partial.rename(binary)
    say(f"floor: built in {elapsed:.0f} s: {binary}")


def _require_go(label: str) -> None:
    if shutil.which("go") is None:
        raise BuildError(
            f"{label}: the Go toolchain is not installed (`go` not on PATH); `make bench-peer` builds the Go "
            "virtual-kubelet and the floor client and needs Go >= 1.25 with access to the Go module proxy."
        )


def download_module(say: Say) -> Path:
    """``go mod download`` the virtual-kubelet module; return its (read-only) directory in the module cache."""
    _require_go("peer")
    env = go_env()
    env["GONOSUMDB"] = ",".join(filter(None, (env.get("GONOSUMDB"), VK_MODULE)))
    say(f"peer: downloading {VK_MODULE}@{VK_VERSION} from the Go module proxy")
    cache_root().mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{VK_MODULE}@{VK_VERSION}"],
        cwd=cache_root(),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or info.get("Error") or not info.get("Dir"):
        raise BuildError(
            f"peer: `go mod download {VK_MODULE}@{VK_VERSION}` failed (exit {proc.returncode}): "
            f"{info.get('Error') or proc.stderr.strip()[-2000:]}; it needs the Go module proxy (GOPROXY)"
        )
    if info.get("Sum") != VK_SUM:
        raise BuildError(
            f"peer: {VK_MODULE}@{VK_VERSION} from the module proxy has hash {info.get('Sum')}, expected {VK_SUM}; "
            "refusing to build it (a tampered proxy or module cache: `go clean -modcache` and retry)"
        )
    return Path(info["Dir"])


def _writable_copy(source: Path, dest: Path) -> None:
    # The module cache is read-only (0444 files, 0555 directories); the patch and `go build` need to write.
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, symlinks=True)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            p = Path(root) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
    dest.chmod(dest.stat().st_mode | stat.S_IWUSR)


def apply_patch(src: Path, patch: Path = VK_PATCH) -> None:
    """Apply ``patch`` to the copy in ``src`` (``git apply``: fails as a whole if any hunk does not apply)."""
    proc = subprocess.run(
        ["git", "apply", "-p1", "--whitespace=nowarn", str(patch)], cwd=src, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BuildError(f"peer: {patch.name} does not apply to {src}: {proc.stderr.strip()}")


def _build_peer(target: Path, binary: Path, say: Say) -> None:
    module_dir = download_module(say)
    target.mkdir(parents=True, exist_ok=True)
    src = target / "src"
    _writable_copy(module_dir, src)
    apply_patch(src)
    partial = target / "virtual-kubelet.partial"
    say(f"peer: building {VK_MODULE}@{VK_VERSION} (mock provider, {VK_PATCH.name}) into {target}")
    cmd = ["go", "build", *_build_flags(), "-o", str(partial), VK_MAIN]
    elapsed = go_build(cmd, src, target / "build.log", "peer", say)
    partial.rename(binary)
    say(f"peer: built in {elapsed:.0f} s: {binary}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m e2e.peer_build``."""
    parser = argparse.ArgumentParser(prog="python -m e2e.peer_build", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    try:
        peer, floor = ensure_peer(), ensure_floor()
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"peer (virtual-kubelet {VK_VERSION}, mock provider, patched): {peer}")
    print(f"floor: {floor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
