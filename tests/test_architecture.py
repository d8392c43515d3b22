"""The package's tiers, checked: who may import whom, and that the core stays pure.

The rule is written in ``vkeci/__init__.py``; this test is what keeps it true. It reads every
module's imports (function-local ones included) with ``ast``, so nothing is imported to check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vkeci"

# tier -> the vkeci modules (prefixes) it may import. "vkeci" alone is the package (``__version__``).
ALLOWED: dict[str, tuple[str, ...]] = {
    "core": ("vkeci.core",),
    "config": ("vkeci.core",),
    "log": (),
    # The vkeci_* series: counted by the clients and the controllers, served by the daemon.
    "metrics": (),
    "clients": ("vkeci.core", "vkeci.clients", "vkeci.config", "vkeci.log", "vkeci.metrics"),
    "controllers": ("vkeci.core", "vkeci.clients", "vkeci.controllers", "vkeci.config", "vkeci.log", "vkeci.metrics"),
    # The kubelet API reads the daemon only through its own Protocols (vkeci.kubelet.backend); from the
    # clients it takes the ECI error class and the client it is handed, nothing else.
    "kubelet": ("vkeci.kubelet", "vkeci.core", "vkeci.clients.eci", "vkeci.log"),
    # The admission webhook: the pure decision, the Kubernetes client, the kubelet API's certificate
    # machinery (reused, not copied), nothing of the daemon.
    "webhook": ("vkeci.webhook", "vkeci.core", "vkeci.clients.kube", "vkeci.kubelet.tls", "vkeci.log"),
}
# Imports that do I/O, keep time, start threads or draw random numbers: none of them in core.
IMPURE = (
    "requests",
    "urllib3",
    "alibabacloud",
    "kubernetes",
    "yaml",
    "threading",
    "concurrent",
    "multiprocessing",
    "asyncio",
    "socket",
    "ssl",
    "http",
    "subprocess",
    "time",
    "uuid",
    "random",
    "secrets",
    "os",
    "pathlib",
    "io",
    "logging",
    "shutil",
    "tempfile",
)
CLOCK_CALLS = ("now", "utcnow", "today")


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def tier(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks: imports there never run."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skip


def imports(tree: ast.AST) -> list[str]:
    """Every module the code imports at run time (type-only imports do not count)."""
    found = []
    skip = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "vkeci":
                found += [f"vkeci.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_tiers(path: Path) -> None:
    rule = ALLOWED.get(tier(path))
    if rule is None:
        return  # commands, cli, daemon: the top may import anything
    wrong = [
        name
        for name in imports(ast.parse(path.read_text()))
        if _under(name, "vkeci") and name != "vkeci.__version__" and not any(_under(name, p) for p in rule)
    ]
    assert not wrong, f"{path.relative_to(PACKAGE)} ({tier(path)}) imports {wrong}; allowed: {rule}"


@pytest.mark.parametrize("path", [p for p in modules() if tier(p) == "core"], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    impure = [name for name in imports(tree) if any(_under(name, bad) for bad in IMPURE)]
    assert not impure, f"core module {path.name} imports {impure}: the core does no I/O and keeps no time"
    clock = [
        f"line {node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in CLOCK_CALLS
    ]
    assert not clock, f"core module {path.name} reads the clock ({', '.join(clock)}): take `now` as an argument"


def test_the_rules_see_every_tier() -> None:
    # A new top-level package must be given a rule here (or be a command), not slip past the test.
    tiers = {tier(p) for p in modules()}
    assert tiers - set(ALLOWED) <= {"__init__", "__main__", "cli", "daemon", "commands"}
