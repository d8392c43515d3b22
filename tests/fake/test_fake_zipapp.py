"""`python dist/vkeci.pyz fake-eci --port 0 ...` works: the zipapp is built the way `make zipapp` builds it.

Marked e2e because building the zipapp takes a minute or more (pip installs every dependency into it);
`make test` runs it, `make unit` does not.
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


@pytest.mark.e2e
def test_zipapp_serves_the_fake(tmp_path: Path) -> None:
    pyz = tmp_path / "vkeci.pyz"
    shiv = Path(sys.executable).parent / "shiv"
    build = subprocess.run(
        [str(shiv), "--compressed", "-q", "-c", "vkeci", "-o", str(pyz), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
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
