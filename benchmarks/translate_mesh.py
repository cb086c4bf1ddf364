"""Translation time and output size for one proxy in a mesh of 1,000 services.

Each service: one HTTP port, 2 subsets (v1, v2), 4 endpoints (Pods + EndpointSlice).
200 VirtualServices (header match + 90/10 split), 200 DestinationRules (subsets + pool).
Measures: push context build (once per snapshot), full translate for one proxy, and after
one endpoint change (new snapshot + push context + EDS-only path, and with only the
services part of the index rebuilt, as the pusher does).

    .venv/bin/python benchmarks/translate_mesh.py [--services 1000] [--port-name tcp]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from controlplane.model.parse import parse
from controlplane.store import Snapshot
from controlplane.translate import (
    MeshConfig,
    Proxy,
    endpoints,
    push_context,
    translate,
    update_push_context,
)


def build_mesh(n_services: int, n_vs: int, n_dr: int, port_name: str = "http") -> Snapshot:
    docs = []
    for i in range(n_services):
        name, ns = f"svc-{i}", f"ns-{i % 10}"
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                     "spec": {"clusterIP": f"10.{96 + i // 60000}.{i // 250}.{i % 250 + 1}", "selector": {"app": name},
                              "ports": [{"name": port_name, "port": 8080}]}})
        eps = []
        for j in range(4):
            pod = f"{name}-{j}"
            ip = f"10.{100 + i // 250}.{i % 250}.{j + 1}"
            docs.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": pod, "namespace": ns, "labels": {"app": name, "version": f"v{j % 2 + 1}"}},
                         "status": {"podIP": ip}})
            eps.append({"addresses": [ip], "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}})
        docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{name}-a", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                     "addressType": "IPv4", "ports": [{"name": port_name, "port": 8080}], "endpoints": eps})
    for i in range(n_dr):
        name, ns = f"svc-{i}", f"ns-{i % 10}"
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"host": name, "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}},
                              "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                          {"name": "v2", "labels": {"version": "v2"}}]}})
    for i in range(n_vs):
        name, ns = f"svc-{i}", f"ns-{i % 10}"
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"hosts": [name], "http": [
                         {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                          "route": [{"destination": {"host": name, "subset": "v2"}}]},
                         {"route": [{"destination": {"host": name, "subset": "v1"}, "weight": 90},
                                    {"destination": {"host": name, "subset": "v2"}, "weight": 10}]}]}})
    by_kind: dict = {}
    for d in docs:
        r = parse(d)
        by_kind.setdefault(r.KIND, {})[r.key] = r
    return Snapshot(by_kind, version=1)


def timed(fn, repeat: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--virtual-services", type=int, default=200)
    ap.add_argument("--destination-rules", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    # tcp: the port carries no headers, so its endpoints carry their workload (Istio's metrics)
    ap.add_argument("--port-name", default="http", help="the services' port name: http or tcp")
    args = ap.parse_args()
    t0 = time.perf_counter()
    snap = build_mesh(args.services, args.virtual_services, args.destination_rules, args.port_name)
    print(f"inputs: {len(snap)} resources parsed in {time.perf_counter() - t0:.2f}s")
    mesh = MeshConfig()
    proxy = Proxy.make("sidecar", "ns-0", labels={"app": "svc-0", "version": "v1"}, ips=["10.100.0.1"])

    t_ctx, ctx = timed(lambda: push_context(snap, mesh), args.repeat)
    t_full, out = timed(lambda: translate(push_context(snap, mesh), proxy), args.repeat)
    ctx = push_context(snap, mesh)
    translate(ctx, proxy)
    others = [Proxy.make("sidecar", "ns-0", labels={"app": f"svc-{10 * k}", "version": "v1"},
                         ips=[f"10.100.{k}.1"]) for k in range(1, 21)]
    t0 = time.perf_counter()
    for other in others:
        translate(ctx, other)
    t_shared = (time.perf_counter() - t0) / len(others)
    sizes = {t.rsplit(".", 1)[-1]: (len(v), sum(m.ByteSize() for m in v)) for t, v in out.items()}
    total = sum(b for _, b in sizes.values())

    key = next(k for k in snap if k.kind == "EndpointSlice")
    old = snap[key]
    changed_ep = dataclasses.replace(old.endpoints[0], addresses=("10.250.0.1",), target_ref=None)
    snap2 = snap.with_changes({key: dataclasses.replace(old, endpoints=old.endpoints + (changed_ep,))}, 2)
    t_eds, eds = timed(lambda: endpoints(push_context(snap2, mesh), proxy), args.repeat)
    t_full2, _ = timed(lambda: translate(push_context(snap2, mesh), proxy), args.repeat)
    # What the pusher does: only the services part of the index is rebuilt.
    changed = snap2.kinds_changed_since(snap)
    t_ctx_part, _ = timed(lambda: update_push_context(ctx, snap2, changed), args.repeat)
    t_eds_part, _ = timed(lambda: endpoints(update_push_context(ctx, snap2, changed), proxy), args.repeat)

    print(f"mesh: {args.services} services ({args.port_name} port) x 2 subsets x 4 endpoints, "
          f"{args.virtual_services} VirtualServices, {args.destination_rules} DestinationRules")
    print(f"push context build (once per snapshot, shared by all proxies): {t_ctx * 1000:.0f} ms")
    print(f"full translate, one proxy, incl. push context:                {t_full * 1000:.0f} ms")
    print(f"another proxy, same namespace and snapshot (shared clusters): {t_shared * 1000:.0f} ms")
    print(f"after one endpoint change, full (ctx + translate):            {t_full2 * 1000:.0f} ms")
    print(f"after one endpoint change, EDS only (ctx + endpoints):        {t_eds * 1000:.0f} ms")
    print(f"after one endpoint change, services part of the index alone:  {t_ctx_part * 1000:.0f} ms")
    print(f"after one endpoint change, EDS only (that part + endpoints):  {t_eds_part * 1000:.0f} ms")
    for t, (count, size) in sorted(sizes.items()):
        print(f"  {t:<24} {count:>6} resources {size / 1024:>9.0f} KiB")
    print(f"  {'total':<24} {'':>6}           {total / 1024:>9.0f} KiB (serialized protobuf)")
    print(f"  EDS after change: {len(eds)} assignments")


if __name__ == "__main__":
    main()
