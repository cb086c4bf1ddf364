"""The folder source's watch latency on its own, apart from the push: from a file renamed
into the watched folder (as the load benchmark changes the mesh) to the store's change
callback (watch, read, parse and merge), for each watcher: inotify (the default on Linux),
watchfiles (elsewhere) and polling.

    .venv/bin/python -m benchmarks.watch_latency [--changes 50] [--files 1000]

``--files`` fills the folder first (one Service per file), so the figure includes what a
change costs in a folder of that size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from controlplane.sources.folder import FolderSource, Watcher
from controlplane.store import Store


def service_yaml(name: str, port: int) -> str:
    return (
        "apiVersion: v1\nkind: Service\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        f"spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: {port}}}]}}\n"
    )


WATCHERS: dict[Watcher, str] = {
    "inotify": "inotify (the default on Linux)",
    "watchfiles": "watchfiles, 10 ms steps",
    "polling": "polling (0.1 s)",
}


def measure(folder: Path, changes: int, watcher: Watcher) -> list[float]:
    """Milliseconds from each rename to the store's change callback."""
    store = Store()
    arrived = threading.Event()
    store.subscribe(lambda _changes: arrived.set())
    source = FolderSource(store, folder, watcher=watcher, poll_interval=0.1)
    source.load()
    source.start()
    try:
        time.sleep(0.5)  # the watcher exists once it has yielded once
        latencies = []
        for k in range(changes):
            staged = folder.parent / f"staged-{k}.yaml"
            staged.write_text(service_yaml("watched", 1000 + k))
            arrived.clear()
            started = time.monotonic()
            os.replace(staged, folder / "watched.yaml")
            if not arrived.wait(10):
                raise TimeoutError(f"change {k} not seen in 10 s ({source.mode})")
            latencies.append((time.monotonic() - started) * 1000)
            time.sleep(0.05)  # changes apart, so each is measured alone
        return latencies
    finally:
        source.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    print("| watcher | files | changes | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
    for watcher, name in WATCHERS.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "config"
            folder.mkdir()
            for i in range(args.files):
                (folder / f"svc-{i}.yaml").write_text(service_yaml(f"svc-{i}", 80))
            ms = sorted(measure(folder, args.changes, watcher))
            p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            print(
                f"| {name} | {args.files:,} | {len(ms)} | {statistics.median(ms):.1f} | "
                f"{p99:.1f} | {ms[-1]:.1f} |"
            )


if __name__ == "__main__":
    main()
