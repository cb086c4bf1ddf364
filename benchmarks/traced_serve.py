"""``controlplane`` under tracemalloc or cProfile, for benchmarks that attribute its costs.

    python -m benchmarks.traced_serve --snapshot-dir DIR [--frames N] serve ...
    python -m benchmarks.traced_serve --profile FILE serve ...

``--snapshot-dir``: each SIGUSR1 writes ``DIR/<n>.snapshot`` (n = 1, 2, ...) of the Python
allocations, then ``DIR/<n>.done``, so a benchmark can tell when it is complete (used by
``stream_memory.py`` to attribute the memory held per connected proxy). ``--profile``: the
whole run under cProfile, its stats written to FILE when the server stops (SIGTERM, as the
benchmark targets stop it); pass it as ``--cp-command`` to ``python -m benchmarks``.
Both slow the server: figures of RSS and time come from runs without them.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import signal
import sys
import tracemalloc
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot-dir", type=Path)
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--profile", type=Path)
    args, rest = parser.parse_known_args()
    from controlplane.cli import main as controlplane_main

    if args.profile is not None:
        profiler = cProfile.Profile()
        try:
            return profiler.runcall(controlplane_main, rest)
        finally:
            profiler.dump_stats(str(args.profile))
    if args.snapshot_dir is None:
        parser.error("--snapshot-dir or --profile")
    args.snapshot_dir.mkdir(parents=True, exist_ok=True)
    counter = itertools.count(1)

    def snapshot(_signum: int, _frame: object) -> None:
        n = next(counter)
        gc.collect()
        tracemalloc.take_snapshot().dump(str(args.snapshot_dir / f"{n}.snapshot"))
        (args.snapshot_dir / f"{n}.done").touch()

    signal.signal(signal.SIGUSR1, snapshot)
    tracemalloc.start(args.frames)
    return controlplane_main(rest)


if __name__ == "__main__":
    sys.exit(main())
