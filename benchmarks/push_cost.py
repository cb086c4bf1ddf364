"""What one change costs the pusher as the mesh grows: the benchmark mesh at S services, G
proxy groups translated into a real SnapshotCache, then endpoint changes (a new address in
one service, an original one gone: its EndpointSlice and Pods), routing changes (one
VirtualService's weights), DestinationRule changes (one added to a service without one, or
taken away), new services (with their DestinationRule) and a new stream's
group (``group_of`` after a change), each timed in-process (no gRPC, no clients): the
control plane's own work per change.

    .venv/bin/python -m benchmarks.push_cost [--services 100,1000,5000] [--groups 4]

Endpoint changes should cost the same at any S (the endpoints of the changed service
alone are rebuilt, for the groups that see it). They go to services spread over the mesh,
the same mix (with subsets or not) at every S. Three CPU figures per endpoint change: the
push; the store's new snapshot (``store.apply``, parsing left out: the source's work); and
both plus what every group's streams read first, the EDS version of the whole set (a
content hash). S=10,000 runs in a few minutes (``--services 10000``). Routing changes and
new services retranslate every group, but only the units whose inputs changed are rebuilt and
serialized again (translate/units.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from benchmarks import mesh, proxies
from controlplane.model.parse import parse
from controlplane.server.push import Pusher
from controlplane.store import ChangeSet, Store
from controlplane.translate import ENDPOINT_TYPE, MeshConfig
from controlplane.xds import SnapshotCache


async def measure(services: int, groups: int, changes: int) -> dict[str, float]:
    spec = mesh.MeshSpec(services=services, endpoints=4, virtual_services=services // 5,
                         destination_rules=services // 5, namespaces=10)
    state = mesh.generate(spec)
    store = Store()
    store.replace("bench", [parse(d) for d in mesh.documents(state)])
    cache = SnapshotCache()
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    for i in range(groups):
        pusher.group_of(proxies.node(proxies.identity(i, groups, spec.namespaces)), None)
    started = time.perf_counter()
    await pusher.push(None)
    full = time.perf_counter() - started

    def apply(index: int) -> ChangeSet:
        return store.apply("bench", [parse(d) for d in mesh.service_documents(state, index)])

    endpoint_ms, cpu_ms, store_cpu_ms, whole_cpu_ms = [], [], [], []
    for k in range(changes):
        # spread over the mesh: the same mix of services (with subsets or not) at every S
        index = (k * services // changes + 3) % services
        state, _, _ = mesh.churn_endpoints(state, index)
        documents = [parse(d) for d in mesh.service_documents(state, index)]  # the source's work
        stored = time.process_time()
        change = store.apply("bench", documents)
        wall, cpu = time.perf_counter(), time.process_time()
        report = await pusher.push(change)
        endpoint_ms.append((time.perf_counter() - wall) * 1000)
        cpu_ms.append((time.process_time() - cpu) * 1000)
        assert report is not None and report.endpoints_only
        # what each group's streams read first: the EDS version of the whole set
        assert all(cache.resources(group, ENDPOINT_TYPE).version for group in pusher.groups())
        store_cpu_ms.append((cpu - stored) * 1000)
        whole_cpu_ms.append((time.process_time() - stored) * 1000)
    routing_ms, routing_cpu_ms = [], []
    for k in range(5):
        state = mesh.set_weights(state, k, (37, 63) if k % 2 == 0 else (63, 37))
        change = apply(k)
        wall, cpu = time.perf_counter(), time.process_time()
        await pusher.push(change)
        routing_ms.append((time.perf_counter() - wall) * 1000)
        routing_cpu_ms.append((time.process_time() - cpu) * 1000)
    rule_ms, rule_cpu_ms = [], []
    for k in range(5):
        index = spec.virtual_services + (k // 2) * 7  # no VirtualService: added, then taken away
        state = mesh.toggle_rule(state, index)
        change = apply(index)
        wall, cpu = time.perf_counter(), time.process_time()
        await pusher.push(change)
        rule_ms.append((time.perf_counter() - wall) * 1000)
        rule_cpu_ms.append((time.process_time() - cpu) * 1000)
    new_service_ms, new_service_cpu_ms = [], []
    for _ in range(3):
        state, index = mesh.add_service(state)  # with its DestinationRule
        change = apply(index)
        wall, cpu = time.perf_counter(), time.process_time()
        await pusher.push(change)
        new_service_ms.append((time.perf_counter() - wall) * 1000)
        new_service_cpu_ms.append((time.process_time() - cpu) * 1000)
    state, _, _ = mesh.churn_endpoints(state, 1)
    apply(1)
    node = proxies.node(proxies.identity(groups + 1, groups, spec.namespaces))
    wall = time.perf_counter()
    pusher.group_of(node, None)  # on the event loop in the server: a stream opening
    group_of_ms = (time.perf_counter() - wall) * 1000
    return {
        "services": services,
        "full push of all groups ms": full * 1000,
        "endpoint change p50 ms": statistics.median(endpoint_ms),
        "endpoint change max ms": max(endpoint_ms),
        "endpoint change CPU ms (p50)": statistics.median(cpu_ms),
        "endpoint change store CPU ms (p50)": statistics.median(store_cpu_ms),
        "endpoint change store+push+versions CPU ms (p50)": statistics.median(whole_cpu_ms),
        "routing change p50 ms": statistics.median(routing_ms),
        "routing change CPU ms (p50)": statistics.median(routing_cpu_ms),
        "DestinationRule change p50 ms": statistics.median(rule_ms),
        "DestinationRule change CPU ms (p50)": statistics.median(rule_cpu_ms),
        "new service p50 ms": statistics.median(new_service_ms),
        "new service CPU ms (p50)": statistics.median(new_service_cpu_ms),
        "group_of after a change ms": group_of_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="100,1000,5000")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    print_rows([asyncio.run(measure(int(s), args.groups, args.changes)) for s in args.services.split(",")])


def print_rows(rows: list[dict[str, float]]) -> None:
    """Rows of figures (the same keys each) as a Markdown table."""
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{row[k]:,.1f}" if isinstance(row[k], float) else f"{row[k]:,}" for k in keys) + " |")


if __name__ == "__main__":
    main()
