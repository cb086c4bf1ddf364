"""Translation time of one ingress gateway with R routes: S services (as translate_mesh.py),
one Gateway (an HTTP server and an HTTPS one with a credentialName, both for
``*.example.com``), and R VirtualService http routes bound to it, spread over V
VirtualServices (each its own host ``app-<i>.example.com``, a path match per route, to the
services in turn).

Measures the push context build, then one router's translation (listeners, route configs,
clusters; the route memo starts empty each time, as after a config change).

    .venv/bin/python -m benchmarks.translate_gateway [--routes 1000 --virtual-services 100 --services 1000]
"""

from __future__ import annotations

import argparse

from benchmarks.translate_mesh import build_mesh, timed
from controlplane.model.parse import parse
from controlplane.translate import ROUTE_TYPE, MeshConfig, Proxy, push_context, translate
from controlplane.translate.index.context import Memo


def gateway_docs(n_routes: int, n_vs: int, n_services: int) -> list:
    docs = [{
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "ingress", "namespace": "istio-system"},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*.example.com"]},
            {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*.example.com"],
             "tls": {"mode": "SIMPLE", "credentialName": "ingress-cert"}},
        ]},
    }]
    per_vs = max(1, n_routes // n_vs)
    for v in range(n_vs):
        http = []
        for r in range(per_vs):
            i = (v * per_vs + r) % n_services
            http.append({"match": [{"uri": {"prefix": f"/api/{r}/"}, "headers": {"x-team": {"exact": f"t{r % 7}"}}}],
                         "route": [{"destination": {"host": f"svc-{i}.ns-{i % 10}.svc.cluster.local",
                                                    "port": {"number": 8080}}}]})
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                     "metadata": {"name": f"app-{v}", "namespace": "istio-system"},
                     "spec": {"hosts": [f"app-{v}.example.com"], "gateways": ["ingress"], "http": http}})
    return [parse(d) for d in docs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--routes", type=int, default=1000)
    ap.add_argument("--virtual-services", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    base = build_mesh(args.services, 0, 0)
    snap = base.with_changes({p.key: p for p in gateway_docs(args.routes, args.virtual_services, args.services)}, 2)
    mesh = MeshConfig()
    router = Proxy.make("router", "istio-system", labels={"istio": "ingressgateway"}, ips=["10.200.0.1"])
    t_ctx, ctx = timed(lambda: push_context(snap, mesh), args.repeat)

    def one() -> dict:
        ctx.memo = Memo()  # nothing shared from an earlier translation
        return translate(ctx, router)

    t_gw, out = timed(one, args.repeat)
    routes = sum(len(vh.routes) for rc in out[ROUTE_TYPE] for vh in rc.virtual_hosts)
    print(f"mesh: {args.services} services; gateway: 2 servers, {args.virtual_services} VirtualServices, "
          f"{routes} Envoy routes over {len(out[ROUTE_TYPE])} route configs")
    print(f"push context build: {t_ctx * 1000:.0f} ms")
    print(f"gateway translation (median of {args.repeat}): {t_gw * 1000:.0f} ms")


if __name__ == "__main__":
    main()
