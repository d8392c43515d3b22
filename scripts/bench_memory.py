"""`vkeci run` under tracemalloc, for `scripts/bench.py --memory`: where the daemon's resident memory goes.

On SIGUSR1 the largest allocation sites (grouped by line, 3 frames) are written to $VKECI_TRACEMALLOC_OUT.
tracemalloc slows the daemon down several times: use it for memory figures only, never for timings.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from typing import Any


def dump(_signum: int, _frame: Any) -> None:
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("traceback")
    total = sum(s.size for s in stats)
    with open(os.environ["VKECI_TRACEMALLOC_OUT"], "w") as out:
        out.write(f"traced: {total / 2**20:.1f} MiB in {len(stats)} sites\n")
        for stat in stats[:40]:
            out.write(f"\n{stat.size / 2**20:8.2f} MiB {stat.count:8d} blocks\n")
            for line in stat.traceback.format()[-6:]:
                out.write(f"    {line}\n")


def main() -> int:
    tracemalloc.start(3)
    signal.signal(signal.SIGUSR1, dump)
    from vkeci.cli import main as vkeci_main

    return int(vkeci_main(["run", *sys.argv[1:]]) or 0)


if __name__ == "__main__":
    sys.exit(main())
