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

import sys
from collections.abc import Callable
from pathlib import Path

from e2e.build import GoCommand, build_main

# The newest helm v3 the Go module proxy served on 2026-12-02 (`go list -m -versions helm.sh/helm/v3`).
HELM_VERSION = "v3.22.0"
MODULE = "helm.sh/helm/v3"
# The Kubernetes version `helm template` / `helm lint` assume for .Capabilities when no cluster is asked:
# the local control plane's, so the chart is checked against the API it is tested on.
KUBE_VERSION = "v1.35.4"


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


HELM = GoCommand("helm", MODULE, HELM_VERSION, "cmd/helm", _ldflags(), needed_by="The deploy tests")


def ensure_helm(progress: Callable[[str], None] | None = None) -> Path:
    """Return the path of the cached helm binary, building it first if needed (a few minutes on 2 cores).

    Raises ``BuildError`` with the tail of the build output when the build fails.
    """
    return HELM.ensure(progress)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m e2e.helm``."""
    return build_main(argv, __doc__, ensure_helm, HELM.describe, prog="python -m e2e.helm")


if __name__ == "__main__":
    sys.exit(main())
