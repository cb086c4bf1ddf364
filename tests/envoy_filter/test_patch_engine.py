"""The EnvoyFilter patch engine against Istio's rules (pilot/pkg/networking/core/envoyfilter
and pilot/pkg/model/envoyfilter.go), on data: no Envoy here (goldens and the real-Envoy tests
cover what Envoy accepts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.analysis import analyze_paths
from controlplane.model.base import ValidationError
from controlplane.model.parse import parse
from controlplane.translate import CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE, push_context, translate
from controlplane.translate.envoy_filter.merge import merge
from controlplane.translate.envoy_filter.values import parse_value
from tests.translate.support import load_documents, mesh_from, proxy_from, snapshot_of

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PRODUCTPAGE = {"namespace": "default", "labels": {"app": "productpage", "version": "v1"},
               "serviceAccount": "bookinfo-productpage", "ips": ["10.1.0.1"]}
REVIEWS = {"namespace": "default", "labels": {"app": "reviews", "version": "v1"}, "ips": ["10.1.0.3"]}
ROUTER = {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager",
                                     "subFilter": {"name": "envoy.filters.http.router"}}}}


def bookinfo_text() -> str:
    return (GOLDEN / "bookinfo_default" / "input.yaml").read_text()


def ef(name: str, patches: list[dict[str, Any]], ns: str = "default", **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
                           "metadata": {"name": name, "namespace": ns},
                           "spec": {"configPatches": patches, **spec}})


def lua(tag: str) -> dict[str, Any]:
    return {"name": f"lua-{tag}", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua", "inline_code": f"-- {tag}"}}


def run(*filters: str, proxy: dict[str, Any] = PRODUCTPAGE):
    docs = load_documents(bookinfo_text() + "".join(f"\n---\n{f}" for f in filters))
    ctx = push_context(snapshot_of(docs), mesh_from({}))
    return ctx, translate(ctx, proxy_from(proxy))


def http_filters(out: dict, listener: str) -> list[str]:
    lst = next(l for l in out[LISTENER_TYPE] if l.name == listener)
    names: list[str] = []
    for fc in lst.filter_chains:
        for f in fc.filters:
            if f.name == "envoy.filters.network.http_connection_manager":
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                names.append(",".join(h.name for h in hcm.http_filters))
    return names


def outbound_http(out: dict) -> str:
    return next(l.name for l in out[LISTENER_TYPE] if l.name.endswith("_9080") and l.traffic_direction == 2)


def test_order_priority_then_root_namespace_then_name() -> None:
    patch = lambda tag: [{"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_OUTBOUND", "listener": ROUTER},
                          "patch": {"operation": "INSERT_BEFORE", "value": lua(tag)}}]
    _, out = run(ef("b-ns", patch("b-ns")), ef("a-ns", patch("a-ns")), ef("z-root", patch("z-root"), ns="istio-system"),
                 ef("first", patch("first"), priority=-1))
    chain = http_filters(out, outbound_http(out))[0].split(",")
    # Each inserts just before the router, so the last applied sits nearest to it.
    assert chain[-5:] == ["lua-first", "lua-z-root", "lua-a-ns", "lua-b-ns", "envoy.filters.http.router"]


@pytest.mark.parametrize(("operation", "sub_filter", "expected"), [
    ("INSERT_BEFORE", None, "lua-x,envoy.filters.http.fault,envoy.filters.http.cors,envoy.filters.http.router"),
    ("INSERT_AFTER", "envoy.filters.http.fault", "envoy.filters.http.fault,lua-x,envoy.filters.http.cors,envoy.filters.http.router"),
    ("INSERT_FIRST", "envoy.filters.http.cors", "lua-x,envoy.filters.http.fault,envoy.filters.http.cors,envoy.filters.http.router"),
    ("REPLACE", "envoy.filters.http.cors", "envoy.filters.http.fault,lua-x,envoy.filters.http.router"),
    ("REPLACE", None, "envoy.filters.http.fault,envoy.filters.http.cors,envoy.filters.http.router"),  # needs a match
    ("REMOVE", "envoy.filters.http.fault", "envoy.filters.http.cors,envoy.filters.http.router"),
])
def test_http_filter_list_operations(operation: str, sub_filter: str | None, expected: str) -> None:
    flt: dict[str, Any] = {"name": "envoy.filters.network.http_connection_manager"}
    if sub_filter:
        flt["subFilter"] = {"name": sub_filter}
    patch: dict[str, Any] = {"operation": operation}
    if operation != "REMOVE":
        patch["value"] = lua("x")
    _, out = run(ef("ops", [{"applyTo": "HTTP_FILTER",
                             "match": {"context": "SIDECAR_OUTBOUND", "listener": {"filterChain": {"filter": flt}}},
                             "patch": patch}]))
    mine = {"lua-x", "envoy.filters.http.fault", "envoy.filters.http.cors", "envoy.filters.http.router"}
    chain = http_filters(out, outbound_http(out))[0].split(",")
    assert ",".join(n for n in chain if n in mine) == expected


def test_context_selects_inbound_or_outbound() -> None:
    inbound = {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": ROUTER},
               "patch": {"operation": "INSERT_BEFORE", "value": lua("in")}}
    _, out = run(ef("in", [inbound]))
    assert all("lua-in" in c for c in http_filters(out, "virtualInbound"))
    assert all("lua-in" not in c for c in http_filters(out, outbound_http(out)))


def test_workload_selector_and_shared_outputs_untouched() -> None:
    patch = {"applyTo": "CLUSTER", "match": {"cluster": {"service": "ratings.default.svc.cluster.local"}},
             "patch": {"operation": "MERGE", "value": {"connect_timeout": "3s"}}}
    filters = [ef("pp-only", [patch], workloadSelector={"labels": {"app": "productpage"}})]
    docs = load_documents(bookinfo_text() + "\n---\n" + filters[0])
    ctx = push_context(snapshot_of(docs), mesh_from({}))
    selected = translate(ctx, proxy_from(PRODUCTPAGE))
    other = translate(ctx, proxy_from(REVIEWS))  # same push context: shares the builder's memo

    def ratings(out: dict) -> cluster_pb2.Cluster:
        return next(c for c in out[CLUSTER_TYPE] if c.name == "outbound|9080||ratings.default.svc.cluster.local")

    assert ratings(selected).connect_timeout.seconds == 3
    assert ratings(other).connect_timeout.seconds == 10
    assert ratings(translate(ctx, proxy_from(REVIEWS))).connect_timeout.seconds == 10


def test_merge_follows_istio() -> None:
    dst = cluster_pb2.Cluster(name="c")
    dst.connect_timeout.FromMilliseconds(1500)
    dst.circuit_breakers.thresholds.add().max_connections.value = 1
    src = parse_value("CLUSTER", {"connect_timeout": "5s", "circuit_breakers": {"thresholds": [{"max_connections": 2}]}})
    merge(dst, src)
    assert (dst.connect_timeout.seconds, dst.connect_timeout.nanos) == (5, 0)  # a Duration is replaced
    assert [t.max_connections.value for t in dst.circuit_breakers.thresholds] == [1, 2]  # lists appended
    merge(dst, src, replace_lists=True)
    assert [t.max_connections.value for t in dst.circuit_breakers.thresholds] == [2]


def test_insert_on_clusters_is_an_add_and_any_adds_once() -> None:
    cluster = {"name": "extra", "type": "STATIC", "connect_timeout": "1s",
               "load_assignment": {"cluster_name": "extra"}}
    _, out = run(ef("add", [{"applyTo": "CLUSTER", "patch": {"operation": "INSERT_FIRST", "value": cluster}}]))
    assert [c.name for c in out[CLUSTER_TYPE]].count("extra") == 1


def test_network_filter_merge_unpacks_the_typed_config() -> None:
    _, out = run(ef("hcm", [{"applyTo": "NETWORK_FILTER", "match": {"context": "SIDECAR_OUTBOUND", "listener": {
        "portNumber": 9080, "filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}}},
        "patch": {"operation": "MERGE", "value": {"typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "server_name": "patched"}}}}]))
    lst = next(l for l in out[LISTENER_TYPE] if l.name == outbound_http(out))
    hcm = hcm_pb2.HttpConnectionManager()
    lst.filter_chains[0].filters[-1].typed_config.Unpack(hcm)
    assert hcm.server_name == "patched" and hcm.rds.route_config_name == "9080"  # merged, not replaced
    assert hcm.http_filters[-1].name == "envoy.filters.http.router"


def test_proxy_version_regex_needs_a_version() -> None:
    # Istio: a proxyVersion match never matches a proxy that reports no ISTIO_VERSION.
    _, out = run(ef("v", [{"applyTo": "HTTP_FILTER", "match": {"proxy": {"proxyVersion": "^1\\..*"}, "listener": ROUTER},
                           "patch": {"operation": "INSERT_BEFORE", "value": lua("v")}}]))
    assert all("lua-v" not in c for c in http_filters(out, outbound_http(out)))


def test_vhost_and_route_patches() -> None:
    _, out = run(ef("routes", [
        {"applyTo": "VIRTUAL_HOST", "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": {
            "portNumber": 9080, "vhost": {"name": "details.default.svc.cluster.local:9080"}}},
         "patch": {"operation": "REMOVE"}},
        {"applyTo": "HTTP_ROUTE", "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": {
            "vhost": {"name": "ratings.default.svc.cluster.local:9080", "route": {"action": "ROUTE"}}}},
         "patch": {"operation": "MERGE", "value": {"route": {"timeout": "7s"}}}},
        {"applyTo": "VIRTUAL_HOST", "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": {"portNumber": 9080}},
         "patch": {"operation": "ADD", "value": {"name": "extra", "domains": ["extra.example"],
                                                 "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 204}}]}}},
    ]))
    rc = next(r for r in out[ROUTE_TYPE] if r.name == "9080")
    names = [vh.name for vh in rc.virtual_hosts]
    assert "details.default.svc.cluster.local:9080" not in names and names[-1] == "extra"
    ratings = next(vh for vh in rc.virtual_hosts if vh.name == "ratings.default.svc.cluster.local:9080")
    assert all(r.route.timeout.seconds == 7 for r in ratings.routes if r.WhichOneof("action") == "route")


def test_bad_values_and_results_are_reported_and_left_out() -> None:
    ctx, out = run(ef("bad", [
        {"applyTo": "CLUSTER", "patch": {"operation": "ADD", "value": {"name": "x", "no_such_field": 1}}},
        {"applyTo": "CLUSTER", "patch": {"operation": "ADD", "value": {"name": ""}}},
        {"applyTo": "CLUSTER", "match": {"cluster": {"name": "BlackHoleCluster"}},
         "patch": {"operation": "MERGE", "value": {"connect_timeout": "0s"}}},
        {"applyTo": "CLUSTER", "match": {"cluster": {"name": "BlackHoleCluster"}},
         "patch": {"operation": "MERGE", "value": {"alt_stat_name": "kept"}}},
    ]))
    problems = {p.patch.index: str(p) for p in ctx.envoy_filters.problems()}
    assert sorted(problems) == [0, 1, 2]
    assert "no_such_field" in problems[0] and "spec.configPatches[0].patch.value" in problems[0]
    assert "connect_timeout" in problems[2]
    blackhole = next(c for c in out[CLUSTER_TYPE] if c.name == "BlackHoleCluster")
    assert blackhole.alt_stat_name == "kept" and blackhole.connect_timeout.seconds == 10


@pytest.mark.parametrize(("patch", "path"), [
    ({"patch": {"operation": "ADD", "value": {}}}, "spec.configPatches[0].applyTo"),
    ({"applyTo": "CLUSTER", "patch": {"operation": "ADD"}}, "spec.configPatches[0].patch.value"),
    ({"applyTo": "CLUSTER", "patch": {"value": {}}}, "spec.configPatches[0].patch.operation"),
    ({"applyTo": "CLUSTER", "match": {"listener": {}}, "patch": {"operation": "REMOVE"}}, "spec.configPatches[0].match"),
    ({"applyTo": "NETWORK_FILTER", "match": {"listener": {"filterChain": {"filter": {
        "name": "envoy.filters.network.tcp_proxy", "subFilter": {"name": "x"}}}}}, "patch": {"operation": "REMOVE"}},
     "spec.configPatches[0].match.listener.filterChain.filter.subFilter"),
    ({"applyTo": "HTTP_FILTER", "patch": {"operation": "ADD", "value": {"name": "x"}}}, "spec.configPatches[0].patch.value"),
    ({"applyTo": "CLUSTER", "match": {"proxy": {"proxyVersion": "(("}}, "patch": {"operation": "REMOVE"}},
     "spec.configPatches[0].match.proxy.proxyVersion"),
])
def test_validation_names_the_field(patch: dict[str, Any], path: str) -> None:
    doc = yaml.safe_load(ef("v", [patch]))
    with pytest.raises(ValidationError) as caught:
        parse(doc)
    assert any(e.path == path for e in caught.value.errors), caught.value.errors


def test_every_istio_sample_envoy_filter_is_accepted() -> None:
    samples = Path("/work/shared/conformance/istio/samples-more")
    if not samples.is_dir():
        pytest.skip("the conformance corpus is not here")
    files = [p for p in samples.rglob("*.yaml") if "kind: EnvoyFilter" in p.read_text()]
    assert files
    report = analyze_paths(files)
    assert not report.errors, [str(e) for e in report.errors]
    assert report.inputs.valid("EnvoyFilter")


def test_analyze_warns_on_a_patch_that_matches_nothing(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(bookinfo_text())
    (tmp_path / "ef.yaml").write_text(ef("mixed", [
        {"applyTo": "CLUSTER", "match": {"cluster": {"service": "nowhere.default.svc.cluster.local"}},
         "patch": {"operation": "MERGE", "value": {"connect_timeout": "3s"}}},
        {"applyTo": "CLUSTER", "match": {"cluster": {"service": "ratings.default.svc.cluster.local"}},
         "patch": {"operation": "MERGE", "value": {"connect_timeout": "3s"}}},
    ], workloadSelector={"labels": {"app": "productpage"}}))
    report = analyze_paths([tmp_path])
    warnings = [str(w) for w in report.warnings if "EnvoyFilter" in str(w)]
    assert len(warnings) == 1 and "spec.configPatches[0]" in warnings[0] and "matches nothing" in warnings[0]
    assert not report.errors


def test_proxy_version_regex_matches_the_reported_version() -> None:
    import dataclasses

    from controlplane.translate import group_key

    docs = load_documents(bookinfo_text() + "\n---\n" + ef("v", [{
        "applyTo": "HTTP_FILTER", "match": {"proxy": {"proxyVersion": "^1\\.2[4-9]\\..*"}, "listener": ROUTER},
        "patch": {"operation": "INSERT_BEFORE", "value": lua("v")}}]))
    ctx = push_context(snapshot_of(docs), mesh_from({}))
    base = proxy_from(PRODUCTPAGE)
    new, old = dataclasses.replace(base, istio_version="1.26.2"), dataclasses.replace(base, istio_version="1.19.0")
    out_new, out_old = translate(ctx, new), translate(ctx, old)
    assert all("lua-v" in c for c in http_filters(out_new, outbound_http(out_new)))
    assert all("lua-v" not in c for c in http_filters(out_old, outbound_http(out_old)))
    assert group_key(ctx, new) != group_key(ctx, old)  # they cannot share a translation
    plain = push_context(snapshot_of(load_documents(bookinfo_text())), mesh_from({}))
    assert group_key(plain, new) == group_key(plain, old)  # but do where no patch reads it


def test_listener_add_once_and_a_taken_address_is_refused() -> None:
    listener = {"name": "extra", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 18080}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": "extra", "cluster": "BlackHoleCluster"}}]}]}
    clash = {**listener, "name": "clash"}
    ctx, out = run(ef("add", [{"applyTo": "LISTENER", "patch": {"operation": "ADD", "value": listener}},
                              {"applyTo": "LISTENER", "patch": {"operation": "ADD", "value": clash}}]))
    names = [lst.name for lst in out[LISTENER_TYPE]]
    assert names.count("extra") == 1 and "clash" not in names
    (problem,) = ctx.envoy_filters.problems()
    assert problem.patch.index == 1 and "same address" in str(problem)


def test_listener_filter_insert_first_keeps_its_order() -> None:
    inspector = {"name": "envoy.filters.listener.http_inspector", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}}
    _, out = run(ef("lf", [{"applyTo": "LISTENER_FILTER", "match": {"listener": {"name": "virtualInbound"}},
                            "patch": {"operation": "INSERT_FIRST", "value": inspector}}]))
    lst = next(l for l in out[LISTENER_TYPE] if l.name == "virtualInbound")
    assert lst.listener_filters[0].name == "envoy.filters.listener.http_inspector"
    assert len(lst.listener_filters) >= 2
