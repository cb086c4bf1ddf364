"""Conversion and translation time of one Kubernetes Gateway API Gateway with R route rules:
S services (as translate_mesh.py), one Gateway (an HTTP listener for ``*.example.com``, routes
from all namespaces), and R HTTPRoute rules attached to it, spread over H HTTPRoutes (each its
own hostname ``app-<i>.example.com``, a path and a header match per rule, to the services in
turn).

Measures the Gateway API conversion alone (Gateway API -> Istio Gateway and VirtualServices
plus status), the push context build (which includes it), then one router's translation
(listeners, route configs, clusters; the route memo starts empty each time).

    .venv/bin/python -m benchmarks.translate_gateway_api [--rules 1000 --routes 100 --services 1000]
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.translate_mesh import build_mesh, timed
from controlplane.model.parse import parse
from controlplane.translate import ROUTE_TYPE, MeshConfig, Proxy, push_context, translate
from controlplane.translate.gateway_api import convert, inputs_from_snapshot
from controlplane.translate.index.context import Memo

API = "gateway.networking.k8s.io/v1"


def gateway_api_docs(n_rules: int, n_routes: int, n_services: int) -> list[Any]:
    docs: list[dict[str, Any]] = [{
        "apiVersion": API, "kind": "Gateway", "metadata": {"name": "ingress", "namespace": "istio-system"},
        "spec": {"gatewayClassName": "istio", "listeners": [{
            "name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com",
            "allowedRoutes": {"namespaces": {"from": "All"}}}]},
    }]
    per_route = max(1, n_rules // n_routes)
    for h in range(n_routes):
        rules = []
        for r in range(min(per_route, 16)):  # the CRD allows 16 rules per HTTPRoute
            i = (h * per_route + r) % n_services
            rules.append({"matches": [{"path": {"type": "PathPrefix", "value": f"/api/{r}"},
                                       "headers": [{"name": "x-team", "value": f"t{r % 7}"}]}],
                          "backendRefs": [{"name": f"svc-{i}", "namespace": f"ns-{i % 10}", "port": 8080}]})
        for extra in range(per_route - len(rules)):  # more than 16: more matches in the last rule
            rules[-1]["matches"].append({"path": {"type": "Exact", "value": f"/extra/{extra}"}})
        docs.append({"apiVersion": API, "kind": "HTTPRoute",
                     "metadata": {"name": f"app-{h}", "namespace": f"ns-{h % 10}"},
                     "spec": {"parentRefs": [{"name": "ingress", "namespace": "istio-system"}],
                              "hostnames": [f"app-{h}.example.com"], "rules": rules}})
    for ns in range(10):  # the routes reach across namespaces: each granted once
        docs.append({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                     "metadata": {"name": "routes", "namespace": f"ns-{ns}"},
                     "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                        "namespace": f"ns-{o}"} for o in range(10)],
                              "to": [{"group": "", "kind": "Service"}]}})
    return [parse(d) for d in docs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--routes", type=int, default=100, help="HTTPRoutes the rules are spread over")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    base = build_mesh(args.services, 0, 0)
    docs = gateway_api_docs(args.rules, args.routes, args.services)
    snap = base.with_changes({d.key: d for d in docs}, 2)
    mesh = MeshConfig()
    t_convert, converted = timed(lambda: convert(inputs_from_snapshot(snap, mesh.domain_suffix)), args.repeat)
    t_ctx, ctx = timed(lambda: push_context(snap, mesh), args.repeat)
    router = Proxy.make("router", "istio-system", labels={"gateway.networking.k8s.io/gateway-name": "ingress"},
                        ips=["10.200.0.1"])

    def one() -> dict:
        ctx.memo = Memo()  # nothing shared from an earlier translation
        return translate(ctx, router)

    t_gw, out = timed(one, args.repeat)
    routes = sum(len(vh.routes) for rc in out[ROUTE_TYPE] for vh in rc.virtual_hosts)
    rules = sum(len(v.spec.http) for v in converted.virtual_services)
    print(f"mesh: {args.services} services; Gateway API: 1 Gateway, {args.routes} HTTPRoutes, "
          f"{rules} converted http routes in {len(converted.virtual_services)} VirtualServices; "
          f"{routes} Envoy routes over {len(out[ROUTE_TYPE])} route configs")
    print(f"Gateway API conversion (median of {args.repeat}): {t_convert * 1000:.0f} ms")
    print(f"push context build, conversion included: {t_ctx * 1000:.0f} ms")
    print(f"gateway translation (median of {args.repeat}): {t_gw * 1000:.0f} ms")


if __name__ == "__main__":
    main()
