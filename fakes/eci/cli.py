"""`python -m fakes.eci` / `vkeci fake-eci`: serve the fake ECI until SIGTERM/SIGINT.

The first stdout line is `ECI endpoint: http://HOST:PORT` (flushed), so scripts can wait for it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the fake's command line."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = any free port, printed on the first line)")
    parser.add_argument(
        "--access-key-id", default=os.environ.get("FAKE_ECI_ACCESS_KEY_ID", "fake-ak"), help="AccessKey ID to accept"
    )
    parser.add_argument(
        "--access-key-secret",
        default=os.environ.get("FAKE_ECI_ACCESS_KEY_SECRET", "fake-secret"),
        help="AccessKey secret to accept (or FAKE_ECI_ACCESS_KEY_SECRET)",
    )
    parser.add_argument("--security-token", default=None, help="make the key an STS key requiring this token")
    parser.add_argument("--state-file", default=None, help="persist container groups here across restarts")
    parser.add_argument("--config", default=None, help="YAML file: VPC, delays, faults (see fakes/README.md)")
    parser.add_argument("--log-requests", action="store_true", help="one stderr line per API call (action, outcome)")


def run(args: argparse.Namespace) -> int:
    """Serve until a signal arrives."""
    from fakes.eci.server import FakeECI
    from fakes.eci.settings import Settings, SettingsError, load_file

    try:
        settings = load_file(args.config) if args.config else Settings()
        fake = FakeECI.start(
            host=args.host,
            port=args.port,
            access_key_id=args.access_key_id,
            access_key_secret=args.access_key_secret,
            config=settings,
            state_file=args.state_file,
            security_token=args.security_token,
        )
    except (SettingsError, OSError, ValueError) as e:
        print(f"fake-eci: {e}", file=sys.stderr)
        return 2
    fake.log_requests = bool(args.log_requests)
    print(f"ECI endpoint: {fake.url}", flush=True)
    print(f"admin API: {fake.admin_url}  (region {settings.region})", flush=True)
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not done.wait(1.0):
        pass
    fake.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m fakes.eci`."""
    parser = argparse.ArgumentParser(prog="python -m fakes.eci", description="Serve a fake Alibaba Cloud ECI.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
