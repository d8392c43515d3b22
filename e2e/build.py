"""Build the control-plane binary from ``e2e/controlplane`` once, and cache it outside the repository.

The cache directory is keyed by a hash of the Go module's content and the build flags, so a change to
``go.mod``/``go.sum``/``*.go`` builds afresh and anything else reuses the binary:

    ~/.cache/vkeci/controlplane-<hash>/k8s-local      the multi-call binary
    ~/.cache/vkeci/controlplane-<hash>/<component>    symlinks: etcd, kube-apiserver, ..., kubectl
    ~/.cache/vkeci/controlplane-<hash>/build.log      output of the build that made it

A file lock makes concurrent callers (two pytest runs, a demo) wait for one build instead of running two.
``python -m e2e.build`` builds (or reports the cached binary) on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MODULE_DIR = Path(__file__).resolve().parent / "controlplane"
K8S_VERSION = "v1.35.4"
BINARY = "k8s-local"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
# A cold build takes tens of minutes on 2 cores; an hour and a half is CI's whole budget.
BUILD_TIMEOUT_S = 85 * 60
PROGRESS_EVERY_S = 30.0


class BuildError(RuntimeError):
    """The control-plane binary could not be built; the message carries the build's own error."""


def _ldflags() -> str:
    # Stamp the true version: /version and `kubectl version` report it, and emulation-version checks use it.
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={K8S_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def build_command(output: Path) -> list[str]:
    """The ``go build`` command line that produces ``output``."""
    return ["go", "build", "-v", "-trimpath", "-p", str(build_jobs()), "-ldflags", _ldflags(), "-o", str(output), "."]


def build_jobs() -> int:
    """``go build -p``: ``$VKECI_BUILD_JOBS``, else the cores up to 4."""
    # Each compile of the big k8s packages takes 1-2 GB; more than 4 in parallel buys little and risks OOM.
    return int(os.environ.get("VKECI_BUILD_JOBS", min(os.cpu_count() or 2, 4)))


def module_hash() -> str:
    """Hash of everything that determines the binary: the module's files and the build flags."""
    h = hashlib.sha256()
    files = sorted(p for p in MODULE_DIR.iterdir() if p.is_file() and (p.suffix == ".go" or p.name.startswith("go.")))
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(_ldflags().encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """``$VKECI_CACHE_DIR``, else ``$XDG_CACHE_HOME/vkeci``, else ``~/.cache/vkeci``."""
    if os.environ.get("VKECI_CACHE_DIR"):
        return Path(os.environ["VKECI_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vkeci"


def bin_dir() -> Path:
    """Directory holding the binary and its component symlinks for the current module content."""
    return cache_root() / f"controlplane-{module_hash()}"


def cached(path: Path) -> Path | None:
    """``path`` if it is an executable file. Every build here renames its binary into place only after it
    succeeded, so present means complete."""
    return path if path.is_file() and os.access(path, os.X_OK) else None


def cached_binary() -> Path | None:
    """The cached control-plane binary if it is complete."""
    return cached(bin_dir() / BINARY)


def ensure_built(binary: Path, label: str, build: Callable[[], None], say: Callable[[str], None]) -> Path:
    """Return ``binary`` (in its cache directory ``binary.parent``), running ``build`` first under
    :func:`build_lock` when it is not there. ``build`` must rename the binary into place only once it is
    complete; raises ``BuildError`` if it did not."""
    if cached(binary) is None:
        with build_lock(binary.parent, label, say):
            if cached(binary) is None:  # the other process may have finished it meanwhile
                build()
    if cached(binary) is None:
        raise BuildError(f"{label}: the build finished but left no {binary}")
    return binary


def ensure_binary(progress: Callable[[str], None] | None = None) -> Path:
    """Return the directory with ``k8s-local`` and its symlinks, building them first if needed.

    ``progress`` receives one-line messages while a cold build runs (default: stderr). Raises
    ``BuildError`` with the tail of the build output when the build fails.
    """
    say = progress or _stderr
    target = bin_dir()
    ensure_built(target / BINARY, "control plane", lambda: _build(target, say), say)
    _link_components(target)
    return target


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class GoCommand:
    """A Go command built with ``go install <module>/<package>@<version>`` (outside any module, from exactly
    the versions its go.mod pins) into ``~/.cache/vkeci/<name>-<version>/<name>``, its output in ``build.log``
    beside it: helm (``e2e.helm``) and metrics-server (``e2e.metrics_server``)."""

    name: str  # the binary's name, and the label of its messages
    module: str
    version: str
    package: str  # inside the module, e.g. "cmd/helm"
    ldflags: str  # what the project's own Makefile stamps
    needed_by: str  # who builds it, for the error a missing toolchain gives: "The deploy tests"
    verbose: bool = False  # `go install -v`: the progress messages count compiled packages

    def dir(self) -> Path:
        """The cache directory of this version."""
        return cache_root() / f"{self.name}-{self.version}"

    def cached(self) -> Path | None:
        """The cached binary if a build finished."""
        return cached(self.dir() / self.name)

    def ensure(self, progress: Callable[[str], None] | None = None) -> Path:
        """Return the path of the cached binary, building it first if needed. Raises ``BuildError`` with the
        tail of the build output when the build fails."""
        say = progress or _stderr
        target = self.dir()
        return ensure_built(target / self.name, self.name, lambda: self._build(target, say), say)

    def describe(self, path: Path) -> str:
        """What ``python -m e2e.<module>`` prints about the binary at ``path``."""
        return f"{self.name} {self.version}: {path}"

    def _build(self, target: Path, say: Callable[[str], None]) -> None:
        go = shutil.which("go")
        if go is None:
            raise BuildError(
                f"{self.name}: the Go toolchain is not installed (`go` not on PATH). {self.needed_by} build "
                f"{self.name} {self.version} from {self.module} and need Go with access to the Go module proxy."
            )
        target.mkdir(parents=True, exist_ok=True)
        gobin = target / "partial"
        shutil.rmtree(gobin, ignore_errors=True)
        log_path = target / "build.log"
        verbose = ["-v"] if self.verbose else []
        cmd = [go, "install", *verbose, "-trimpath", "-p", str(build_jobs()), "-ldflags", self.ldflags]
        cmd.append(f"{self.module}/{self.package}@{self.version}")
        say(f"{self.name}: building {self.version} from the Go module proxy into {target}; log: {log_path}")
        elapsed = go_build(cmd, target, log_path, self.name, say, GOBIN=str(gobin))
        built = gobin / self.name
        if not built.is_file():
            raise BuildError(f"{self.name}: `go install` succeeded but left no {built}; full log: {log_path}")
        built.rename(target / self.name)  # atomic: a complete binary or none at all
        gobin.rmdir()
        with open(log_path, "a") as log:
            log.write(f"built in {elapsed:.0f}s\n")
        say(f"{self.name}: built in {elapsed:.0f}s: {target / self.name}")


def build_main(
    argv: list[str] | None,
    doc: str,
    ensure: Callable[[], Path],
    describe: Callable[[Path], str],
    *,
    prog: str,
    flag: str = "--print-path",
    flag_help: str = "print only the binary's path, build if needed",
) -> int:
    """The command line of a ``python -m e2e.<build>``: build if needed, then print ``describe(path)`` (with
    ``flag``: only the path), or the build's error (exit 1)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument(flag, action="store_true", dest="path_only", help=flag_help)
    args = parser.parse_args(argv)
    try:
        path = ensure()
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    print(path if args.path_only else describe(path))
    return 0


@contextlib.contextmanager
def build_lock(target: Path, label: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``<target>.lock`` (next to the cache directory ``target``) while building into ``target``.

    A second caller waits for the first instead of building the same thing twice; it should check for the
    finished result again once it holds the lock.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        if not _try_lock(lock):
            (say or _stderr)(f"{label}: another process is building {target}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def go_env(**extra: str) -> dict[str, str]:
    """The environment of every cached Go build: static binaries, the installed toolchain, no VCS stamping
    (plus ``extra``, e.g. ``GOBIN`` for a ``go install``)."""
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local", **extra)
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false").strip()
    return env


def go_build(
    cmd: list[str], cwd: Path, log_path: Path, label: str, say: Callable[[str], None], **extra_env: str
) -> float:
    """Run ``cmd`` (a ``go build`` or ``go install``) in ``cwd`` with :func:`go_env` (plus ``extra_env``), its
    output in ``log_path``, reporting progress every 30 s; return the seconds it took. Raises ``BuildError``
    with the log's tail on failure."""
    start = time.monotonic()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=go_env(**extra_env), stdout=log, stderr=subprocess.STDOUT)
        rc = _wait_with_progress(proc, log_path, start, say, label)
    elapsed = time.monotonic() - start
    if rc != 0:
        raise BuildError(
            f"{label}: `go build` failed (exit {rc}) after {elapsed:.0f}s in {cwd}; "
            f"full log: {log_path}\n{_tail(log_path, 40)}"
        )
    return elapsed


def _try_lock(lock_file: IO[str]) -> bool:
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _build(target: Path, say: Callable[[str], None]) -> None:
    if shutil.which("go") is None:
        raise BuildError(
            "control plane: the Go toolchain is not installed (`go` not on PATH). The e2e tests build "
            f"kube-apiserver etc. from {MODULE_DIR} and need Go >= 1.25 with access to the Go module proxy."
        )
    target.mkdir(parents=True, exist_ok=True)
    log_path = target / "build.log"
    partial = target / f"{BINARY}.partial"
    say(
        f"control plane: building Kubernetes {K8S_VERSION} (apiserver, controller-manager, scheduler, etcd, "
        f"kubectl) into {target}; a cold build takes 5-15 min on 2 cores, log: {log_path}"
    )
    try:
        elapsed = go_build(build_command(partial), MODULE_DIR, log_path, "control plane", say)
    except BuildError:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target / BINARY)  # atomic: a complete binary or none at all
    say(f"control plane: built in {_fmt(elapsed)}: {target / BINARY}")


def _wait_with_progress(
    proc: subprocess.Popen[bytes], log_path: Path, start: float, say: Callable[[str], None], label: str
) -> int:
    next_report = start + PROGRESS_EVERY_S
    while True:
        try:
            return proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now - start > BUILD_TIMEOUT_S:
            proc.kill()
            proc.wait()
            raise BuildError(f"{label}: build did not finish within {_fmt(BUILD_TIMEOUT_S)}; log: {log_path}")
        if now >= next_report:
            next_report = now + PROGRESS_EVERY_S
            downloads, packages = _progress_counts(log_path)
            fetched = f"{downloads} modules downloaded, " if downloads else ""
            say(f"{label}: still building, {_fmt(now - start)} elapsed, {fetched}{packages} packages compiled")


def _progress_counts(log_path: Path) -> tuple[int, int]:
    """(modules downloaded, packages compiled) so far: `go build -v` prints a line per compiled package and
    the go command a "go: downloading" line per module it fetches."""
    downloads = packages = 0
    try:
        with open(log_path, "rb") as f:
            next(f, None)  # the command line this module wrote first
            for line in f:
                if line.startswith(b"go: downloading"):
                    downloads += 1
                elif not line.startswith(b"go: "):
                    packages += 1
    except OSError:
        pass
    return downloads, packages


def _link_components(target: Path) -> None:
    for name in COMPONENTS:
        link = target / name
        if not link.is_symlink():
            tmp = target / f".{name}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(BINARY)
            tmp.rename(link)  # atomic, so a concurrent caller never sees a half-made link


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def _describe(target: Path) -> str:
    return "\n".join([f"control plane binaries ({K8S_VERSION}): {target}", *(f"  {target / n}" for n in COMPONENTS)])


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m e2e.build``."""
    return build_main(
        argv,
        __doc__,
        ensure_binary,
        _describe,
        prog="python -m e2e.build",
        flag="--print-dir",
        flag_help="print only the directory, build if needed",
    )


if __name__ == "__main__":
    sys.exit(main())
