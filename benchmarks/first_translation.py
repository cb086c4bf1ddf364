"""What a new proxy group's first translation costs, in-process: the benchmark mesh at S
services, the server's initial push (no group yet), its warm-up (Pusher.warm), then G groups
joining one after the other (``group_of`` as a stream opening does, then the first
translation job), each timed in CPU, with the translation units it had to build. This is the
control plane's own part of a cold start at small P, where every group is new.

    .venv/bin/python -m benchmarks.first_translation [--services 1000,5000] [--groups 4]

After the warm-up, a group of a namespace that sees the mesh as the warm-up's sidecar does
takes its outbound clusters and assignments whole; what it builds is its own (route
configurations with its namespace's short names, inbound listeners and clusters).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time

from benchmarks import mesh, proxies
from benchmarks.push_cost import print_rows
from controlplane.model.parse import parse
from controlplane.server.push import Pusher
from controlplane.store import Store
from controlplane.translate import MeshConfig
from controlplane.xds import SnapshotCache


async def measure(services: int, groups: int) -> dict[str, float]:
    spec = mesh.MeshSpec(services=services, endpoints=4, virtual_services=services // 5,
                         destination_rules=services // 5, namespaces=10)
    store = Store()
    store.replace("bench", [parse(d) for d in mesh.documents(mesh.generate(spec))])
    pusher = Pusher(SnapshotCache(), lambda: store.snapshot, MeshConfig())
    await pusher.push(None)
    units = pusher.context().units
    before, cpu = units.misses, time.process_time()
    await pusher.warm(has_certificate=False)  # the simulated proxies hold no certificate
    warm_ms, warm_units = (time.process_time() - cpu) * 1000, units.misses - before
    gc.collect()
    gc.freeze()  # as the server does after its warm-up
    cpu_ms, built = [], []
    for index in range(groups):
        node = proxies.node(proxies.identity(index, groups, spec.namespaces))
        before, cpu = units.misses, time.process_time()
        await pusher.translate_group(pusher.group_of(node, None))
        cpu_ms.append((time.process_time() - cpu) * 1000)
        built.append(units.misses - before)
    gc.unfreeze()
    return {
        "services": services,
        "warm-up CPU ms": warm_ms,
        "warm-up units built": warm_units,
        "first translation CPU ms (p50)": statistics.median(cpu_ms),
        "first translation CPU ms (max)": max(cpu_ms),
        "units built per group (p50)": statistics.median(built),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="1000,5000")
    parser.add_argument("--groups", type=int, default=4)
    args = parser.parse_args()
    print_rows([asyncio.run(measure(int(s), args.groups)) for s in args.services.split(",")])


if __name__ == "__main__":
    main()
