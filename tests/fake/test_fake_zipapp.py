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


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIV_", "ECI_", "VKECI_")) and k != "TMPDIR"}
    return {**env, **extra}


@pytest.mark.e2e
def test_zipapp_unpacks_into_a_private_temp_dir_when_home_is_unwritable(tmp_path: Path) -> None:
    # Admin review R22: HOME=/proc/self gave a FileNotFoundError traceback from shiv.
    pyz = _built_zipapp()
    env = _clean_env(HOME="/proc/self", TMPDIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(pyz), "version"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("vkeci ")
    assert any((tmp_path / f"vkeci-shiv-{os.getuid()}").iterdir())


@pytest.mark.e2e
def test_zipapp_loads_a_kubeconfig_with_an_exec_plugin_without_the_dropped_kubernetes_parts(tmp_path: Path) -> None:
    # scripts/zipapp.py leaves kubernetes/aio and kubernetes/client/api out: the loader must not need them.
    pyz = _built_zipapp()
    import json

    import yaml

    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "from-the-plugin"},
    }
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": ["-c", f"print({json.dumps(credential)!r})"],
    }
    kubeconfig = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"exec": plugin}}],
    }
    kubeconfig.write_text(yaml.safe_dump(config))
    env = _clean_env(SHIV_ROOT=str(tmp_path / "shiv-root"), KUBECONFIG=str(kubeconfig), HOME=str(tmp_path))
    result = subprocess.run([sys.executable, str(pyz), "check"], env=env, capture_output=True, text=True, timeout=300)
    kube = [line for line in result.stdout.splitlines() if line.startswith("FAIL Kubernetes")]
    assert kube and "http://127.0.0.1:1 did not answer" in kube[0], result.stdout + result.stderr
    assert "Traceback" not in result.stderr
