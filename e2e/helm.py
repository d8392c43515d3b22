"""Build the ``helm`` CLI from its Go module once, and cache it outside the repository.

No package the project may install ships helm (PyPI, Debian and npm have only wrappers that download a
release binary from get.helm.sh at run time, which is not a package registry), so it is built from
``helm.sh/helm/v3`` through the Go module proxy, like the control plane (``e2e.build``):

    ~/.cache/vkeci/helm-<version>/helm        the binary (renamed into place only after a good build)
    ~/.cache/vkeci/helm-<version>/build.log   output of the build that made it

The same file lock as the control plane's makes concurrent callers wait for one build.
``python -m e2e.helm`` builds it (or reports the cached binary); ``make helm`` runs that.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from e2e.build import BuildError, build_lock, cache_root, go_build

# The newest helm v3 the Go module proxy served on 2026-12-02 (`go list -m -versions helm.sh/helm/v3`).
HELM_VERSION = "v3.22.0"
MODULE = "helm.sh/helm/v3"
# The Kubernetes version `helm template` / `helm lint` assume for .Capabilities when no cluster is asked:
# the local control plane's, so the chart is checked against the API it is tested on.
KUBE_VERSION = "v1.35.4"
BUILD_TIMEOUT_S = 40 * 60


def helm_dir() -> Path:
    """Directory holding the helm binary of ``HELM_VERSION``."""
    return cache_root() / f"helm-{HELM_VERSION}"


def cached_helm() -> Path | None:
    """The cached binary if a build finished (it is renamed into place only then)."""
    path = helm_dir() / "helm"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _ldflags() -> str:
    # What helm's own Makefile stamps: its version (`helm version`), and the Kubernetes version it assumes
    # for .Capabilities.KubeVersion when rendering offline (default otherwise: v1.20).
    major, minor = KUBE_VERSION.lstrip("v").split(".")[:2]
    return " ".join(
        [
            "-s",
            "-w",
            f"-X {MODULE}/internal/version.version={HELM_VERSION}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            f"-X {MODULE}/pkg/lint/rules.k8sVersionMajor={major}",
            f"-X {MODULE}/pkg/lint/rules.k8sVersionMinor={minor}",
            f"-X {MODULE}/pkg/chartutil.k8sVersionMajor={major}",
            f"-X {MODULE}/pkg/chartutil.k8sVersionMinor={minor}",
        ]
    )


def ensure_helm(progress: Callable[[str], None] | None = None) -> Path:
    """Return the path of the cached helm binary, building it first if needed (a few minutes on 2 cores).

    Raises ``BuildError`` with the tail of the build output when the build fails.
    """
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    target = helm_dir()
    if cached_helm() is None:
        with build_lock(target, "helm", say):
            if cached_helm() is None:
                _build(target, say)
    path = cached_helm()
    assert path is not None
    return path


def _build(target: Path, say: Callable[[str], None]) -> None:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            f"helm: the Go toolchain is not installed (`go` not on PATH). The deploy tests build helm "
            f"{HELM_VERSION} from {MODULE} and need Go with access to the Go module proxy."
        )
    target.mkdir(parents=True, exist_ok=True)
    gobin = target / "partial"
    shutil.rmtree(gobin, ignore_errors=True)
    log_path = target / "build.log"
    jobs = os.environ.get("VKECI_BUILD_JOBS", str(min(os.cpu_count() or 2, 4)))
    # `go install pkg@version` builds outside any module, from exactly the versions helm's go.mod pins.
    cmd = [go, "install", "-trimpath", "-p", jobs, "-ldflags", _ldflags(), f"{MODULE}/cmd/helm@{HELM_VERSION}"]
    say(f"helm: building {HELM_VERSION} from the Go module proxy into {target}; log: {log_path}")
    elapsed = go_build(cmd, target, log_path, "helm", say, GOBIN=str(gobin))
    built = gobin / "helm"
    if not built.is_file():
        raise BuildError(f"helm: `go install` succeeded but left no {built}; full log: {log_path}")
    built.rename(target / "helm")  # atomic: a complete binary or none at all
    gobin.rmdir()
    with open(log_path, "a") as log:
        log.write(f"built in {elapsed:.0f}s\n")
    say(f"helm: built in {elapsed:.0f}s: {target / 'helm'}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m e2e.helm``."""
    parser = argparse.ArgumentParser(prog="python -m e2e.helm", description=__doc__.splitlines()[0])
    parser.add_argument("--print-path", action="store_true", help="print only the binary's path, build if needed")
    args = parser.parse_args(argv)
    try:
        path = ensure_helm()
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    print(path if args.print_path else f"helm {HELM_VERSION}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
