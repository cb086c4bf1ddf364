"""Load and validate a folder of 1,000 Services, 1,000 EndpointSlices and 500 Istio
resources; measure the time and the memory the store keeps for it.

    .venv/bin/python benchmarks/load_folder.py [--services 1000] [--istio 500] [--repeat 3]

Prints the time of the whole load (read, parse YAML, validate, fill the store), of
YAML parsing alone, of a one-file edit picked up by a rescan, and of one store
update, then (in a second pass, under tracemalloc) the memory retained.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane.sources.folder import FolderSource, find_yaml_files
from controlplane.sources.yaml_loader import load_file
from controlplane.store import Store

PER_FILE = 50  # documents per file


def service(i: int) -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: svc-{i}
  namespace: ns-{i % 20}
  labels: {{app: svc-{i}}}
spec:
  selector: {{app: svc-{i}}}
  clusterIP: 10.96.{i // 250}.{i % 250 + 1}
  ports:
  - {{name: http, port: 8080, targetPort: 8080, protocol: TCP}}
  - {{name: grpc, port: 9090, targetPort: 9090, protocol: TCP}}
"""


def endpoint_slice(i: int) -> str:
    endpoints = "\n".join(
        f"""  - addresses: [10.1.{i // 250}.{(i * 3 + k) % 250 + 1}]
    conditions: {{ready: true}}
    targetRef: {{kind: Pod, name: svc-{i}-{k}, namespace: ns-{i % 20}}}"""
        for k in range(3)
    )
    return f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-{i}-abcde
  namespace: ns-{i % 20}
  labels: {{kubernetes.io/service-name: svc-{i}}}
addressType: IPv4
ports:
- {{name: http, port: 8080, protocol: TCP}}
- {{name: grpc, port: 9090, protocol: TCP}}
endpoints:
{endpoints}
"""


def istio(i: int) -> str:
    ns = f"ns-{i % 20}"
    match i % 4:
        case 0:
            return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs-{i}, namespace: {ns}}}
spec:
  hosts: [svc-{i}]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: svc-{i}, subset: v2}}}}]
  - route:
    - {{destination: {{host: svc-{i}, subset: v1}}, weight: 90}}
    - {{destination: {{host: svc-{i}, subset: v2}}, weight: 10}}
    timeout: 5s
    retries: {{attempts: 3, perTryTimeout: 2s}}
"""
        case 1:
            return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: dr-{i}, namespace: {ns}}}
spec:
  host: svc-{i - 1}
  trafficPolicy:
    connectionPool: {{tcp: {{maxConnections: 100}}}}
    tls: {{mode: ISTIO_MUTUAL}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""
        case 2:
            return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: se-{i}, namespace: {ns}}}
spec:
  hosts: [api-{i}.example.com]
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  resolution: DNS
  location: MESH_EXTERNAL
"""
        case _:
            return f"""apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: ap-{i}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: svc-{i}}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{principals: [cluster.local/ns/{ns}/sa/client]}}}}]
    to: [{{operation: {{methods: [GET], paths: [/api/*]}}}}]
"""


def generate(folder: Path, services: int, istio_count: int) -> int:
    documents = [service(i) for i in range(services)]
    documents += [endpoint_slice(i) for i in range(services)]
    documents += [istio(i) for i in range(istio_count)]
    for n in range(0, len(documents), PER_FILE):
        (folder / f"config-{n // PER_FILE:03}.yaml").write_text(
            "---\n".join(documents[n : n + PER_FILE])
        )
    return len(documents)


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--istio", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        total = generate(folder, args.services, args.istio)
        files = find_yaml_files([folder])

        def load() -> tuple[Store, FolderSource]:
            store = Store()
            source = FolderSource(store, folder)
            source.load()
            return store, source

        load_time, (store, source) = timed(load, args.repeat)  # type: ignore[misc]
        assert len(store.snapshot) == total, (len(store.snapshot), total, source.errors[:3])
        assert not [e for e in source.errors if e.is_error], source.errors[:3]
        yaml_time, _ = timed(lambda: [len(load_file(f).documents) for f in files], args.repeat)

        # One file edited: a rescan stats every file and re-reads only that one.
        target = files[0]
        text = target.read_text()
        edits = []
        for n in range(args.repeat):
            target.write_text(text.replace("port: 8080,", f"port: {8100 + n},", 1))
            start = time.perf_counter()
            changes = source.rescan()
            edits.append(time.perf_counter() - start)
            assert len(changes) == 1, changes.changes.keys()
        rescan_time = statistics.median(edits)

        some = next(iter(store.snapshot.values()))
        apply_time, _ = timed(lambda: store.apply("bench", [some]), 1)

        print(
            f"resources: {total} in {len(files)} files "
            f"({args.services} Services, {args.services} EndpointSlices, {args.istio} Istio)"
        )
        print(
            f"load + validate + store:   {load_time * 1000:8.1f} ms  "
            f"({load_time / total * 1e6:.0f} us per resource)"
        )
        print(f"  of which YAML parsing:   {yaml_time * 1000:8.1f} ms")
        print(f"one-file edit (rescan):    {rescan_time * 1000:8.1f} ms")
        print(f"one store update:          {apply_time * 1000:8.3f} ms")

        del store, source
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.take_snapshot()
        store, source = load()
        gc.collect()
        after = tracemalloc.take_snapshot()
        retained = sum(s.size_diff for s in after.compare_to(base, "filename"))
        del source  # what the store alone keeps alive
        gc.collect()
        store_only = sum(
            s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename")
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"memory, store + folder source state: {retained / 1e6:6.1f} MB ({retained / total / 1e3:.1f} kB per resource)"
        )
        print(f"memory, store alone:                 {store_only / 1e6:6.1f} MB")
        print(f"peak while loading (tracemalloc):    {peak / 1e6:6.1f} MB")
        assert len(store.snapshot) == total


if __name__ == "__main__":
    main()
