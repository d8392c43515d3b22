"""`python dist/vkeci.pyz fake-eci --port 0 ...` works: the zipapp that `make zipapp` built.

Building it takes a minute or more and needs the package index (pip installs every dependency into it), so
`make test` and `make e2e` run `make zipapp` before they enter the hermetic network namespace (README,
"Hermetic tests"), and this test uses that file. Marked e2e: `make unit` neither builds nor tests it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from alibabacloud_eci20180808 import models as m
from conftest import AK, SK, sdk_client

ROOT = Path(__file__).resolve().parents[2]


def _built_zipapp() -> Path:
    """dist/vkeci.pyz, if it is newer than every source file that goes into it; else fail saying what to run."""
    pyz = ROOT / "dist" / "vkeci.pyz"
    assert pyz.is_file(), f"{pyz} is missing: run `make zipapp` (`make test` and `make e2e` do)"
    sources = [ROOT / "pyproject.toml", *(ROOT / "vkeci").rglob("*.py"), *(ROOT / "fakes").rglob("*.py")]
    newer = [str(p.relative_to(ROOT)) for p in sources if p.stat().st_mtime > pyz.stat().st_mtime]
    assert not newer, f"{pyz} is older than {newer[:5]}: run `make zipapp` (`make test` and `make e2e` do)"
    return pyz


@pytest.mark.e2e
def test_zipapp_serves_the_fake(tmp_path: Path) -> None:
    pyz = _built_zipapp()
    env = dict(os.environ, SHIV_ROOT=str(tmp_path / "shiv-root"))
    proc = subprocess.Popen(
        [sys.executable, str(pyz), "fake-eci", "--port", "0", "--access-key-id", AK, "--access-key-secret", SK],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ECI endpoint: http://127.0.0.1:"), line

        class _Endpoint:
            endpoint = line.strip().split("http://", 1)[1]

        body = sdk_client(_Endpoint()).describe_regions(m.DescribeRegionsRequest()).body  # type: ignore[arg-type]
        assert body.regions[0].region_id == "cn-hangzhou"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
