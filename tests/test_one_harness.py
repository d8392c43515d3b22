"""One e2e harness (issue 13): the e2e tests, the bench and the demo share ``e2e/harness.py`` instead of
copies, and no script reaches into tests/ for it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "e2e" / "harness.py"
# What the harness holds; a second definition anywhere is a copy.
SHARED = (
    "free_port",
    "wait_for",
    "placement",
    "running",
    "settled",
    "fake_groups",
    "stray_group",
    "start_fake_in_process",
    "start_fake_process",
    "daemon_env",
    "private_stand",
)
SHARED_CLASSES = ("DaemonProcess", "Kube")


def _python_files() -> list[Path]:
    dirs = ("scripts", "tests/e2e", "e2e")
    return [p for d in dirs for p in (ROOT / d).rglob("*.py") if p != HARNESS]


def test_the_harness_defines_what_it_shares() -> None:
    text = HARNESS.read_text()
    for name in SHARED:
        assert re.search(rf"^def {name}\(", text, re.M), name
    for name in SHARED_CLASSES:
        assert re.search(rf"^class {name}\b", text, re.M), name


def test_no_copy_of_the_harness_elsewhere() -> None:
    copies = []
    for path in _python_files():
        text = path.read_text()
        for name in SHARED:
            if re.search(rf"^def {name}\(", text, re.M):
                copies.append(f"{path.relative_to(ROOT)}: def {name}")
        for name in SHARED_CLASSES:
            if re.search(rf"^class {name}\b", text, re.M):
                copies.append(f"{path.relative_to(ROOT)}: class {name}")
    assert copies == [], f"import these from e2e.harness instead: {copies}"


def test_no_script_imports_from_the_tests() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "scripts").glob("*.py")
        if re.search(r"sys\.path.*tests|^\s*(from|import) (vkharness|vkfixtures|tests)\b", p.read_text(), re.M)
    ]
    assert offenders == []
