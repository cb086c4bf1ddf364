"""Requests walked through generated config (no Envoy): which route and cluster they reach."""

from __future__ import annotations

import pytest

from controlplane.translate.walk import Request, WalkError, walk
from tests.translate.support import run_case

REVIEWS = "reviews.default.svc.cluster.local"


def cluster(subset: str, host: str = REVIEWS, port: int = 9080) -> str:
    return f"outbound|{port}|{subset}|{host}"


def test_end_user_jason_reaches_v2_others_v1() -> None:
    out = run_case("header_match_exact_prefix_regex")
    assert walk(out, Request(9080, "reviews:9080", headers={"end-user": "jason"})).cluster == cluster("v2")
    assert walk(out, Request(9080, "reviews", headers={"end-user": "bob"})).cluster == cluster("v1")
    assert walk(out, Request(9080, "reviews", headers={"x-group": "beta-1"})).cluster == cluster("v3")
    assert walk(out, Request(9080, "reviews", headers={"x-id": "1234"})).cluster == cluster("v3")
    assert walk(out, Request(9080, "reviews", headers={"x-id": "12a"})).cluster == cluster("v1")


def test_domains_short_fqdn_and_vip() -> None:
    out = run_case("bookinfo_all_v1")
    for host in ("reviews", "reviews:9080", "reviews.default", "reviews.default.svc", REVIEWS, "10.96.0.12:9080"):
        r = walk(out, Request(9080, host))
        assert r.virtual_host == f"{REVIEWS}:9080" and r.cluster == cluster("v1"), host
    assert walk(out, Request(9080, "unknown.example.com")).cluster == "PassthroughCluster"


def test_uri_method_authority_and_case() -> None:
    out = run_case("uri_method_authority_match")
    assert walk(out, Request(9080, "reviews", "/health", "GET")).cluster == cluster("v1")
    assert walk(out, Request(9080, "reviews", "/health", "POST")).cluster == cluster("v1")  # falls to last
    assert walk(out, Request(9080, "reviews", "/API/x")).cluster == cluster("v2")
    assert walk(out, Request(9080, "reviews", "/r/abc")).cluster == cluster("v3")


def test_without_headers_and_query_params() -> None:
    out = run_case("without_headers_query_params")
    assert walk(out, Request(9080, "reviews", "/p?version=2")).cluster == cluster("v2")
    assert walk(out, Request(9080, "reviews", "/p?version=2", headers={"x-debug": "1"})).cluster == cluster("v1")
    assert walk(out, Request(9080, "reviews", "/p?beta=yes")).cluster == cluster("v3")


def test_source_labels_select_route_for_this_proxy() -> None:
    out = run_case("source_labels_and_port_match")
    assert walk(out, Request(9080, "reviews")).cluster == cluster("v2")


def test_weighted_split_redirect_direct_response() -> None:
    assert walk(run_case("weighted_90_10"), Request(9080, "reviews")).weighted_clusters == {
        cluster("v1"): 90, cluster("v2"): 10
    }
    red = walk(run_case("redirect"), Request(9080, "reviews", "/old/x"))
    assert red.redirect["path"] == "/new" and red.redirect["host"] == "ratings"
    assert walk(run_case("direct_response"), Request(9080, "reviews", "/teapot")).direct_response == 418


def test_registry_only_blocks_unknown_hosts() -> None:
    r = walk(run_case("registry_only"), Request(9080, "evil.example.com"))
    assert r.direct_response == 502 and r.virtual_host == "block_all"


def test_tcp_and_sni_routes() -> None:
    r = walk(run_case("tcp_routes"), Request(27017, address="10.96.3.1"))
    assert r.weighted_clusters == {
        "outbound|27017|v1|mongo.default.svc.cluster.local": 80,
        "outbound|27017|v2|mongo.default.svc.cluster.local": 20,
    }
    sni = run_case("tls_sni_routes")
    assert walk(sni, Request(443, sni="a.example.com")).cluster == "outbound|443||b.example.com"
    assert walk(sni, Request(443, sni="b.example.com")).cluster == "outbound|443||b.example.com"
    assert walk(sni, Request(443, sni="c.example.com")).cluster == "PassthroughCluster"


def test_sidecar_egress_scope_limits_hosts() -> None:
    out = run_case("sidecar_egress_scoping")
    assert walk(out, Request(80, "a")).cluster == "outbound|80||a.ns1.svc.cluster.local"
    assert walk(out, Request(80, "b.ns2")).cluster == "outbound|80||b.ns2.svc.cluster.local"
    assert walk(out, Request(80, "c.ns3")).cluster == "PassthroughCluster"


def test_explicit_bind_listeners() -> None:
    out = run_case("explicit_bind_local_mesh")
    outbound = walk(out, Request(9080, "reviews", address="127.0.11.1", headers={"end-user": "x"}))
    assert outbound.listener == "127.0.11.1_9080"
    assert outbound.cluster == "outbound|9080||reviews.default.svc.cluster.local"
    inbound = walk(out, Request(9080, "productpage", address="127.0.10.1"))
    assert inbound.listener == "127.0.10.1_9080" and inbound.cluster == "inbound|9080||"


def test_gateway_only_vs_ignored_by_sidecar() -> None:
    out = run_case("vs_gateways_ignored_for_sidecar")
    assert walk(out, Request(9080, "reviews")).cluster == cluster("")
    assert walk(out, Request(9080, "ratings", "/gw")).route.endswith(".1")


def test_no_listener_raises() -> None:
    out = run_case("explicit_bind_local_mesh")  # no iptables: no virtualOutbound catch-all
    with pytest.raises(WalkError):
        walk(out, Request(12345, "x", address="1.1.1.1"))


def test_delegated_routes_under_the_roots_match() -> None:
    out = run_case("vs_delegate_cross_namespace")  # root in default, delegate in team-reviews
    beta = walk(out, Request(9080, "reviews", "/v2/beta/x", headers={"end-user": "jason"}))
    assert beta.cluster == cluster("v3") and beta.route == "v2-team-beta"
    assert walk(out, Request(9080, "reviews", "/v2/beta/x")).cluster == cluster("v2")
    assert walk(out, Request(9080, "reviews", "/v2/anything")).cluster == cluster("v2")
    # a delegate route outside the root's /v2, a missing and a private delegate: no routes of theirs
    for path in ("/other", "/missing/x", "/private/x", "/"):
        assert walk(out, Request(9080, "reviews", path)).cluster == cluster("v1"), path
    assert walk(out, Request(9080, "ratings", "/r")).cluster == "outbound|9080||ratings.default.svc.cluster.local"
