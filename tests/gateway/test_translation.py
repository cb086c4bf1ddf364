"""Gateway translation on data, walked without Envoy (the golden cases' inputs, and small
ones): which listener, chain, virtual host and cluster a request at the router reaches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.model.base import ObjectMeta
from controlplane.model.common import Port
from controlplane.model.gateway import Gateway, GatewaySpec, Server, ServerTLSSettings
from controlplane.translate import (
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    Proxy,
    push_context,
    translate,
)
from controlplane.translate.index.gateways import merge_gateways
from controlplane.translate.walk import Request, WalkError, walk
from tests.translate.support import load_documents, mesh_from, proxy_from, snapshot_of

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _case(name: str, proxy_override: dict | None = None) -> dict:
    spec = yaml.safe_load((GOLDEN / name / "proxy.yaml").read_text())
    spec.update(proxy_override or {})
    ctx = push_context(snapshot_of(load_documents((GOLDEN / name / "input.yaml").read_text())), mesh_from(spec))
    return translate(ctx, proxy_from(spec))


def test_bookinfo_gateway_routes_by_path() -> None:
    out = _case("gateway_http")
    hit = walk(out, Request(port=8080, host="anything.example", path="/productpage"))
    assert (hit.listener, hit.route_config) == ("0.0.0.0_8080", "http.8080")
    assert hit.cluster == "outbound|9080||productpage.default.svc.cluster.local"
    with pytest.raises(WalkError, match="no route"):  # Envoy answers 404
        walk(out, Request(port=8080, host="anything.example", path="/admin"))


def test_a_router_gets_no_listener_from_gateways_selecting_others() -> None:
    out = _case("gateway_http", {"labels": {"istio": "egressgateway"}})
    assert out[LISTENER_TYPE] == [] and out[ROUTE_TYPE] == []


def test_gateway_only_virtual_services_stay_off_sidecars() -> None:
    sidecar = _case("gateway_http", {"kind": "sidecar", "namespace": "default", "labels": {"app": "x"}})
    hit = walk(sidecar, Request(port=9080, host="productpage", path="/productpage"))
    assert hit.virtual_host == "productpage.default.svc.cluster.local:9080"
    # the mesh-only VirtualService (reviews -> v1) applies to sidecars, not to the gateway
    assert walk(sidecar, Request(port=9080, host="reviews")).cluster.startswith("outbound|9080|v1|")


def test_https_chains_by_sni_and_match_gateways() -> None:
    out = _case("gateway_https_credential")
    web = walk(out, Request(port=443, host="bookinfo.example.com", sni="bookinfo.example.com", path="/reviews/1"))
    assert web.route_config == "https.443.https-bookinfo.web.default"
    assert web.cluster == "outbound|9080||reviews.default.svc.cluster.local"  # match gateways: [default/web]
    # the match for the mesh only is not on the gateway
    assert walk(out, Request(port=443, host="mtls.example.com", sni="mtls.example.com",
                             path="/mesh-only")).cluster.startswith("outbound|9080||productpage.")
    redirect = walk(out, Request(port=80, host="bookinfo.example.com"))
    assert redirect.virtual_host == "bookinfo.example.com:80"
    routes = {r.name: r for r in out[ROUTE_TYPE]}
    assert routes["http.80"].virtual_hosts[0].require_tls == 2  # ALL: plain HTTP gets 301
    assert walk(out, Request(port=15443, host="a.mesh.example.com", sni="a.mesh.example.com")).virtual_host == (
        "*.mesh.example.com:15443"
    )
    assert SECRET_TYPE not in out  # no Secret in the input: nothing is served


def test_passthrough_and_auto_passthrough() -> None:
    out = _case("gateway_tls_passthrough")
    assert walk(out, Request(port=443, sni="secure.example.com")).cluster == "outbound|8443||secure.default.svc.cluster.local"
    with pytest.raises(WalkError):  # other.example.com: a server host, but no tls route for it
        walk(out, Request(port=443, sni="other.example.com"))
    sni = "outbound_.9080_.v2_.reviews.default.svc.cluster.local"
    assert walk(out, Request(port=15443, sni=sni)).cluster == sni
    clusters = {c.name: c for c in out["type.googleapis.com/envoy.config.cluster.v3.Cluster"]}
    assert clusters[sni].eds_cluster_config.service_name == "outbound|9080|v2|reviews.default.svc.cluster.local"


def test_tcp_servers() -> None:
    out = _case("gateway_tcp")
    assert walk(out, Request(port=31400)).cluster == "outbound|27017||mongo.default.svc.cluster.local"
    assert walk(out, Request(port=31443, sni="mongo.example.com")).cluster == "outbound|27017||mongo.default.svc.cluster.local"


def test_conflicting_servers_first_gateway_wins() -> None:
    out = _case("gateway_conflicts")
    routes = {r.name for r in out[ROUTE_TYPE]}
    assert "https.443.https-shop.a-first.default" in routes and "https.443.https-shop.b-second.default" not in routes
    http = walk(out, Request(port=80, host="b.example.com"))
    assert http.cluster == "outbound|9080||details.default.svc.cluster.local"  # merged into http.80
    assert walk(out, Request(port=80, host="a.example.com")).cluster.startswith("outbound|9080||productpage.")
    docs = load_documents((GOLDEN / "gateway_conflicts" / "input.yaml").read_text())
    ctx = push_context(snapshot_of(docs), mesh_from({}))
    messages = [str(c) for c in ctx.gateways.conflicts()]
    assert any("b-second spec.servers[0]" in m and "shop.example.com (claimed by default/a-first)" in m for m in messages)
    assert any("b-second spec.servers[2]" in m and "protocol TCP conflicts" in m for m in messages)


def _claiming_gateways(stamps: dict[str, str]) -> str:
    """Two Gateways claiming shop.example.com on 443: ``a`` in namespace zz, ``b`` in aa, with
    the creation times given by name."""
    docs = []
    for name, namespace in (("a", "zz"), ("b", "aa")):
        meta: dict[str, str] = {"name": name, "namespace": namespace}
        if name in stamps:
            meta["creationTimestamp"] = stamps[name]
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": meta, "spec": {
            "selector": {"istio": "ingressgateway"},
            "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*/shop.example.com"],
                         "tls": {"mode": "SIMPLE", "credentialName": f"{name}-cert"}}]}})
    return yaml.safe_dump_all(docs)


@pytest.mark.parametrize(("stamps", "winner", "loser"), [
    # Istio's sortConfigByCreationTime: the older Gateway keeps the host, whatever its name...
    ({"a": "2025-01-01T00:00:00Z", "b": "2024-01-01T00:00:00Z"}, "aa/b", "zz/a"),
    ({"a": "2024-01-01T00:00:00Z", "b": "2025-01-01T00:00:00Z"}, "zz/a", "aa/b"),
    # ...one without a creation time counts as the oldest (Go's zero time)...
    ({"a": "2024-01-01T00:00:00Z"}, "aa/b", "zz/a"),
    # ...and at equal times the name decides before the namespace.
    ({}, "zz/a", "aa/b"),
    ({"a": "2024-01-01T00:00:00Z", "b": "2024-01-01T00:00:00Z"}, "zz/a", "aa/b"),
])
def test_conflicting_servers_go_to_the_oldest_gateway(stamps: dict[str, str], winner: str, loser: str) -> None:
    ctx = push_context(snapshot_of(load_documents(_claiming_gateways(stamps))), mesh_from({}))
    out = translate(ctx, Proxy.make("router", "istio-system", labels={"istio": "ingressgateway"}))
    namespace, name = winner.split("/")
    assert {r.name for r in out[ROUTE_TYPE]} == {f"https.443.https.{name}.{namespace}"}
    [conflict] = ctx.gateways.conflicts()
    assert conflict.gateway == loser and f"claimed by {winner}" in str(conflict)


@pytest.mark.parametrize(("stamps", "winner"), [
    ({"a-new": "2025-01-01T00:00:00Z", "z-old": "2024-01-01T00:00:00Z"}, "z-old"),
    ({}, "a-new"),  # no creation times: by name
])
def test_virtual_services_on_a_gateway_route_in_creation_order(stamps: dict[str, str], winner: str) -> None:
    """Two VirtualServices for one host on one Gateway: the older one's catch-all route comes
    first (Istio's sortConfigByCreationTime), so it takes the request."""
    docs: list[dict] = [{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "gw"},
                         "spec": {"selector": {"istio": "ingressgateway"},
                                  "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                                               "hosts": ["shop.example.com"]}]}}]
    for name in ("a-new", "z-old"):
        meta = {"name": name, **({"creationTimestamp": stamps[name]} if name in stamps else {})}
        docs += [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
             "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9080}]}},
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": meta, "spec": {
                "hosts": ["shop.example.com"], "gateways": ["gw"],
                "http": [{"route": [{"destination": {"host": name, "port": {"number": 9080}}}]}]}},
        ]
    ctx = push_context(snapshot_of(load_documents(yaml.safe_dump_all(docs))), mesh_from({}))
    out = translate(ctx, Proxy.make("router", "default", labels={"istio": "ingressgateway"}))
    hit = walk(out, Request(port=80, host="shop.example.com"))
    assert hit.cluster == f"outbound|9080||{winner}.default.svc.cluster.local"


def test_egress_gateway_originates_tls() -> None:
    out = _case("gateway_egress_tls_origination")
    hit = walk(out, Request(port=80, host="edition.example.com"))
    assert hit.cluster == "outbound|443||edition.example.com"
    cluster = next(c for c in out["type.googleapis.com/envoy.config.cluster.v3.Cluster"]
                   if c.name == "outbound|443||edition.example.com")
    assert cluster.transport_socket.name == "envoy.transport_sockets.tls"
    sidecar = _case("gateway_egress_tls_origination", {"kind": "sidecar", "namespace": "default", "labels": {"app": "x"}})
    assert walk(sidecar, Request(port=80, host="edition.example.com")).cluster == (
        "outbound|80||istio-egressgateway.istio-system.svc.cluster.local"
    )


def _gateway(name: str, *servers: Server) -> Gateway:
    return Gateway(ObjectMeta(name=name, namespace="default"), GatewaySpec(servers=servers))


def test_merge_rules() -> None:
    https = ServerTLSSettings(mode="SIMPLE", credential_name="c")
    a = _gateway("a", Server(Port(443, "HTTPS", "https"), hosts=("*.example.com",), tls=https),
                 Server(Port(80, "HTTP", "http"), hosts=("*",)))
    b = _gateway("b", Server(Port(443, "HTTPS", "https"), hosts=("x.other.com",), tls=https),
                 Server(Port(80, "HTTP2", "http2"), hosts=("b.com",)),
                 Server(Port(443, "HTTP", "plain"), hosts=("p.com",)))
    merged = merge_gateways([a, b])
    assert [s.route_name for s in merged.ports[443]] == ["https.443.https.a.default", "https.443.https.b.default"]
    assert [s.gateway for s in merged.ports[80]] == ["default/a", "default/b"]  # HTTP and HTTP2 merge
    assert [(c.gateway, c.index) for c in merged.conflicts] == [("default/b", 2)]


def test_secret_served_only_in_the_gateway_namespace() -> None:
    import base64

    from tests.harness.pki import LocalCA

    pem = LocalCA().issue("web.example.com", dns=("web.example.com",))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web", "namespace": "istio-system"},
              "type": "kubernetes.io/tls",
              "data": {"tls.crt": base64.b64encode(pem.cert).decode(), "tls.key": base64.b64encode(pem.key).decode()}}
    gateway = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
               "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{
                   "port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["web.example.com"],
                   "tls": {"mode": "SIMPLE", "credentialName": "web"}}]}}
    ctx = push_context(snapshot_of(load_documents(yaml.safe_dump_all([secret, gateway]))), mesh_from({}))
    mine = translate(ctx, Proxy.make("router", "istio-system", labels={"istio": "ingressgateway"}))
    assert [s.name for s in mine[SECRET_TYPE]] == ["kubernetes://web"]
    other = translate(ctx, Proxy.make("router", "other", labels={"istio": "ingressgateway"}))
    assert SECRET_TYPE not in other
    assert any(p.namespace == "other" and p.secret == "web" for p in ctx.credentials.problems())


def test_the_most_specific_server_name_wins() -> None:
    docs = [
        {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
         "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
             {"port": {"number": 443, "name": f"https-{n}", "protocol": "HTTPS"}, "hosts": [h],
              "tls": {"mode": "SIMPLE", "credentialName": n}}
             for n, h in (("any", "*.example.com"), ("a", "a.example.com"), ("deep", "*.b.example.com"))]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "all", "namespace": "default"},
         "spec": {"hosts": ["*.example.com"], "gateways": ["gw"], "http": [{"route": [{"destination": {"host": "web"}}]}]}},
    ]
    ctx = push_context(snapshot_of(load_documents(yaml.safe_dump_all(docs))), mesh_from({}))
    out = translate(ctx, Proxy.make("router", "istio-system", labels={"istio": "ingressgateway"}))
    route = {sni: walk(out, Request(port=443, sni=sni, host=sni)).route_config
             for sni in ("a.example.com", "x.b.example.com", "c.example.com")}
    assert route == {"a.example.com": "https.443.https-a.gw.default",
                     "x.b.example.com": "https.443.https-deep.gw.default",
                     "c.example.com": "https.443.https-any.gw.default"}


@pytest.mark.envoy
def test_duplicate_server_names_keep_the_first_chain_and_envoy_accepts_it() -> None:
    from tests.translate.support import validate_many

    def tls_vs(name: str, sni: list[str], host: str) -> dict:
        return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"hosts": ["*.example.com"], "gateways": ["gw"], "tls": [
                    {"match": [{"sniHosts": sni}], "route": [{"destination": {"host": host, "port": {"number": 443}}}]}]}}

    docs = [
        {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
         "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
             {"port": {"number": 443, "name": "tls", "protocol": "TLS"}, "hosts": ["*.example.com"],
              "tls": {"mode": "PASSTHROUGH"}}]}},
        tls_vs("first", ["a.example.com", "b.example.com"], "one.example.com"),
        tls_vs("second", ["a.example.com"], "two.example.com"),
        tls_vs("third", ["c.example.com", "a.example.com"], "three.example.com"),
    ]
    ctx = push_context(snapshot_of(load_documents(yaml.safe_dump_all(docs))), mesh_from({}))
    out = translate(ctx, Proxy.make("router", "istio-system", labels={"istio": "ingressgateway"}))
    chains = [list(fc.filter_chain_match.server_names) for fc in out[LISTENER_TYPE][0].filter_chains]
    assert chains == [["a.example.com", "b.example.com"], ["c.example.com"]]
    assert walk(out, Request(port=443, sni="a.example.com")).cluster == "outbound|443||one.example.com"
    assert not validate_many({"duplicates": out})
