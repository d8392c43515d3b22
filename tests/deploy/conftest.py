"""Fixtures for the deploy/ tests: kubectl (from the cached control-plane build) and helm (built from its Go
module on first use, e2e/helm.py). A missing binary that cannot be built fails the tests that need it."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.build import ensure_binary
from e2e.helm import ensure_helm


def _progress(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def say(message: str) -> None:
        # A cold build runs for minutes: show its progress although pytest captures output.
        if capture is not None:
            with capture.global_and_fixture_disabled():
                print(message, flush=True)
        else:
            print(message, flush=True)

    return say


@pytest.fixture(scope="session")
def kubectl_bin(pytestconfig: pytest.Config) -> Path:
    """The control plane's kubectl (v1.35), whose built-in kustomize `kubectl apply -k` uses."""
    return ensure_binary(_progress(pytestconfig)) / "kubectl"


@pytest.fixture(scope="session")
def helm_bin(pytestconfig: pytest.Config) -> Path:
    """helm, built from helm.sh/helm/v3 and cached outside the repository."""
    return ensure_helm(_progress(pytestconfig))
