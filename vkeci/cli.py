"""The `vkeci` command line: one argparse subcommand per job.

Each subcommand is one module (``vkeci.commands.*``; ``fake-eci`` is the fake's). Only the module of
the command being run is imported, and those modules keep heavy imports (the SDK, the kubernetes
package) inside ``run()``, so starting a command stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from vkeci import __version__

# name -> (module, help). The module provides `add_arguments(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "version": ("vkeci.cli", "print the vk-eci version"),
    "translate": ("vkeci.commands.translate", "print the ECI request vk-eci would send for a pod manifest"),
    "run": ("vkeci.commands.run", "run the virtual node: register it and run its pods on ECI"),
    "webhook": ("vkeci.commands.webhook", "serve the admission webhook that routes pods to ECI by label"),
    "check": ("vkeci.commands.check", "validate configuration and credentials against ECI and Kubernetes"),
    "fake-eci": ("fakes.eci.cli", "serve a fake ECI OpenAPI for tests and demos"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`vkeci version` takes no arguments."""


def run(args: argparse.Namespace) -> int:
    """Print the version."""
    print(f"vkeci {__version__}")
    return 0


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered; with ``only``, just that command's
    module is imported (the others are listed in the help but not built)."""
    # No prefix matching (allow_abbrev=False): `--lease` must not mean one of two flags, nor a flag added later.
    parser = argparse.ArgumentParser(
        prog="vkeci", description="A virtual kubelet for Alibaba Cloud ECI.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"vkeci {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        module.add_arguments(command)
        handler: Callable[[argparse.Namespace], int] = module.run
        command.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script, `python vkeci.py` and `dist/vkeci.pyz`."""
    words = list(sys.argv[1:] if argv is None else argv)
    chosen = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(words)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.handler(args) or 0)
