"""The Kubernetes source's watch latency on its own, apart from the push: how long an endpoint
change made through the API takes to reach the store (the watch event read, parsed and merged,
the store's change callback called), with the API test double in its own process holding an
S-service mesh, as for the ``controlplane-kube`` target.

    .venv/bin/python -m benchmarks.kube_watch_latency [--services 1000] [--changes 50]

Each change is the target's endpoint churn (a Pod created, the EndpointSlice replaced, the old
Pod deleted). Reported: from the acknowledgement of the change's first write (the target's
clock) to the EndpointSlice in the store, and from the EndpointSlice write's own
acknowledgement (the watch delivery alone). The source runs in this process, as in the server,
with every kind the server watches (the optional CRDs answer 404).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import mesh
from benchmarks.kube_target import ApiDoubleProcess, writes
from controlplane.sources.kubernetes import KubernetesSource, api_client_from_config
from controlplane.store import ChangeSet, Store
from tests.harness.kube import kubeconfig

SLICE = "EndpointSlice"


async def measure(services: int, changes: int, gap: float) -> tuple[list[float], list[float]]:
    """(first write -> slice in the store, slice write -> slice in the store), in ms."""
    spec = mesh.MeshSpec(services=services, endpoints=4, virtual_services=services // 5,
                         destination_rules=services // 5, namespaces=10)
    state = mesh.generate(spec)
    store = Store()
    arrived = threading.Event()
    seen: dict[str, float] = {}

    def on_change(changeset: ChangeSet) -> None:
        now = time.monotonic()
        if SLICE in changeset.kinds and SLICE not in seen:
            seen[SLICE] = now
            arrived.set()

    store.subscribe(on_change)
    api = ApiDoubleProcess()
    with tempfile.TemporaryDirectory(prefix="kube-watch-") as tmp:
        await api.start(list(mesh.documents(state)), Path(tmp))
        config = kubeconfig(Path(tmp) / "kubeconfig", api.url)
        source = KubernetesSource(store, api_client_from_config(config))
        source.start()
        try:
            if not await asyncio.to_thread(source.wait_synced, 120):
                raise TimeoutError("the Kubernetes source did not sync in 120 s")
            assert api.writer is not None
            from_first, from_slice = [], []
            for k in range(changes):
                index = (k * 7919) % services
                churned, _, _ = mesh.churn_endpoints(state, index)
                batch = writes(mesh.service_documents(state, index),
                               mesh.service_documents(churned, index))
                slice_write = next(i for i, (_, path, _) in enumerate(batch)
                                   if "/endpointslices/" in path)
                state = churned
                seen.clear()
                arrived.clear()
                moments = await api.writer.apply(batch)
                if not await asyncio.to_thread(arrived.wait, 10):
                    raise TimeoutError(f"change {k} not in the store after 10 s")
                from_first.append((seen[SLICE] - moments[0]) * 1000)
                from_slice.append((seen[SLICE] - moments[slice_write]) * 1000)
                await asyncio.sleep(gap)  # changes apart, so each is measured alone
            return from_first, from_slice
        finally:
            await asyncio.to_thread(source.stop)
            await api.stop()


def _row(name: str, services: int, values: list[float]) -> str:
    ms = sorted(values)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"| {name} | {services:,} | {len(ms)} | {statistics.median(ms):.1f} | {p99:.1f} | "
            f"{ms[-1]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between changes")
    args = parser.parse_args()
    from_first, from_slice = asyncio.run(measure(args.services, args.changes, args.gap))
    print("| endpoint change to the store | services | changes | p50 ms | p99 ms | max ms |\n"
          "|---|---|---|---|---|---|")
    print(_row("from the first write's ack (Pod created)", args.services, from_first))
    print(_row("from the EndpointSlice write's ack", args.services, from_slice))


if __name__ == "__main__":
    main()
