"""scripts/zipapp.py's launcher: the zipapp refuses another Python at once and unpacks without a writable HOME
(admin review R21, R22). The launcher runs here with a stand-in for shiv's bootstrap; the real archive is
tested in tests/fake/test_fake_zipapp.py."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.zipapp import launcher, replace_main

MAJOR, MINOR = sys.version_info[:2]


def _run(tmp_path: Path, main: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``main`` as the archive's __main__.py would be, with a _bootstrap that reports SHIV_ROOT."""
    (tmp_path / "__main__.py").write_text(main)
    (tmp_path / "_bootstrap.py").write_text(
        "import os\ndef bootstrap():\n    print('bootstrap', os.environ.get('SHIV_ROOT', ''))\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("SHIV_ROOT", "HOME", "TMPDIR")}
    return subprocess.run(
        [sys.executable, str(tmp_path / "__main__.py")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_another_python_is_refused_at_once_in_one_line_saying_what_to_do(tmp_path: Path) -> None:
    result = _run(tmp_path, launcher(MAJOR, MINOR + 1), HOME=str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"vkeci.pyz: built for CPython {MAJOR}.{MINOR + 1}, and this is Python {MAJOR}.{MINOR}")
    assert f"Run it with python{MAJOR}.{MINOR + 1}" in line and "make clean && make zipapp PYTHON=" in line


def test_a_writable_home_is_used_as_shiv_would(tmp_path: Path) -> None:
    result = _run(tmp_path, launcher(MAJOR, MINOR), HOME=str(tmp_path / "home"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "bootstrap"  # SHIV_ROOT left unset: shiv's ~/.shiv
    assert (tmp_path / "home" / ".shiv").is_dir()


def test_an_unwritable_home_falls_back_to_a_private_temp_dir(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = _run(tmp_path, launcher(MAJOR, MINOR), HOME="/proc/self", TMPDIR=str(temp))
    assert result.returncode == 0, result.stderr
    fallback = temp / f"vkeci-shiv-{os.getuid()}"
    assert result.stdout.strip() == f"bootstrap {fallback}"
    assert fallback.stat().st_mode & 0o777 == 0o700


def test_a_fallback_someone_else_could_write_to_is_refused_with_how_to_set_shiv_root(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    (temp / f"vkeci-shiv-{os.getuid()}").mkdir(parents=True)
    (temp / f"vkeci-shiv-{os.getuid()}").chmod(0o777)
    result = _run(tmp_path, launcher(MAJOR, MINOR), HOME="/proc/self", TMPDIR=str(temp))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "neither ~/.shiv nor" in line and "set SHIV_ROOT to a writable directory" in line


def test_an_unwritable_shiv_root_is_one_line(tmp_path: Path) -> None:
    result = _run(tmp_path, launcher(MAJOR, MINOR), SHIV_ROOT="/proc/self/nowhere", HOME=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "vkeci.pyz: SHIV_ROOT=/proc/self/nowhere is not a writable directory: set SHIV_ROOT to a writable "
        "directory for the unpacked dependencies (about 120 MB; in a pod, an emptyDir)"
    )


@pytest.mark.parametrize("shebang", [b"#!/usr/bin/env python3.11\n", b""])
def test_replace_main_keeps_the_shebang_and_every_other_entry(tmp_path: Path, shebang: bytes) -> None:
    built = tmp_path / "in.pyz"
    with built.open("wb") as out:
        out.write(shebang)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("__main__.py", "import _bootstrap\n")
            archive.writestr("site-packages/x.py", "X = 1\n")
    replace_main(built, tmp_path / "out.pyz", "print('ours')\n")
    data = (tmp_path / "out.pyz").read_bytes()
    assert data.startswith(shebang)
    with zipfile.ZipFile(tmp_path / "out.pyz") as archive:
        assert archive.read("__main__.py") == b"print('ours')\n"
        assert archive.read("site-packages/x.py") == b"X = 1\n"
