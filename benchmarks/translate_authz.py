"""Translation time with AuthorizationPolicies: S services (as translate_mesh.py) and P
policies, half selecting one workload each (ALLOW by principal + method, DENY on a path),
half namespace-wide (ALLOW from the namespace); one mesh-wide DENY in the root namespace.

Measures the push context build, and translating N proxies (one per service, each with its
own labels, so each computes its RBAC once) with and without the policies.

    .venv/bin/python benchmarks/translate_authz.py [--services 1000 --policies 500 --proxies 100]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.translate_mesh import build_mesh, timed
from controlplane.model.parse import parse
from controlplane.store import Snapshot
from controlplane.translate import MeshConfig, Proxy, push_context, translate


def policies(n: int, n_services: int) -> list:
    docs = []
    for i in range(n):
        ns = f"ns-{i % 10}"
        meta = {"name": f"authz-{i}", "namespace": ns}
        if i % 2 == 0:
            spec = {"selector": {"matchLabels": {"app": f"svc-{i % n_services}"}},
                    "action": "ALLOW" if i % 4 == 0 else "DENY",
                    "rules": [{"from": [{"source": {"principals": [f"cluster.local/ns/{ns}/sa/client-{i}"]}}],
                               "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*", "/v1/{*}/items"]}}]},
                              {"to": [{"operation": {"paths": ["/admin*"]}}],
                               "when": [{"key": "request.headers[x-debug]", "values": ["on"]}]}]}
        else:
            spec = {"rules": [{"from": [{"source": {"namespaces": [ns, "istio-system"]}}]}]}
        docs.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": meta, "spec": spec})
    docs.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                 "metadata": {"name": "mesh-deny", "namespace": "istio-system"},
                 "spec": {"action": "DENY", "rules": [{"from": [{"source": {"notNamespaces": ["ns-*", "istio-system"]}}]}]}})
    return [parse(d) for d in docs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=500)
    ap.add_argument("--proxies", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = build_mesh(args.services, 200, 200)
    extra = {p.key: p for p in policies(args.policies, args.services)}
    with_authz = base.with_changes(extra, 2)
    mesh = MeshConfig()
    proxies = [Proxy.make("sidecar", f"ns-{i % 10}", labels={"app": f"svc-{i}", "version": "v1"},
                          ips=[f"10.100.{i // 250}.{i % 250 + 1}"]) for i in range(args.proxies)]

    def all_proxies(snap: Snapshot) -> float:
        ctx = push_context(snap, mesh)
        t0 = time.perf_counter()
        for p in proxies:
            translate(ctx, p)
        return time.perf_counter() - t0

    t_ctx0, _ = timed(lambda: push_context(base, mesh), args.repeat)
    t_ctx1, _ = timed(lambda: push_context(with_authz, mesh), args.repeat)
    t0 = min(all_proxies(base) for _ in range(args.repeat))
    t1 = min(all_proxies(with_authz) for _ in range(args.repeat))
    print(f"mesh: {args.services} services, 200 VirtualServices, 200 DestinationRules, "
          f"{args.policies + 1} AuthorizationPolicies")
    print(f"push context build: {t_ctx0 * 1000:.0f} ms without policies, {t_ctx1 * 1000:.0f} ms with")
    print(f"{args.proxies} proxies translated: {t0 * 1000:.0f} ms without policies, {t1 * 1000:.0f} ms with "
          f"({(t1 - t0) / args.proxies * 1000:.2f} ms per proxy for authorization)")


if __name__ == "__main__":
    main()
