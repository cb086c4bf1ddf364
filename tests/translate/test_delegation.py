"""VirtualService delegation merged in the index, with Istio's own cases
(pilot/pkg/model/virtualservice_test.go: TestMergeVirtualServices, TestMergeHttpRoutes,
TestMergeHTTPMatchRequests, TestHasConflict), adapted to valid input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml

from controlplane.model.common import StringMatch
from controlplane.model.frozen import FrozenDict
from controlplane.model.virtual_service import HTTPMatchRequest, HTTPRoute, VirtualService
from controlplane.translate.index.delegation import (
    by_key,
    find_delegate,
    gateway_name,
    has_conflict,
    merge_delegates,
    merge_matches,
    merge_routes,
)
from tests.translate.support import load_documents

SUFFIX = "cluster.local"


def prefix(p: str) -> StringMatch:
    return StringMatch(prefix=p)


def exact(e: str) -> StringMatch:
    return StringMatch(exact=e)


def M(**kw: Any) -> HTTPMatchRequest:
    for key in ("headers", "query_params", "without_headers", "source_labels"):
        if key in kw:
            kw[key] = FrozenDict(kw[key])
    return HTTPMatchRequest(**kw)


def vs_docs(*docs: dict[str, Any]) -> list[VirtualService]:
    return load_documents(yaml.safe_dump_all(
        [{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", **d} for d in docs]
    ))


def vs(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def dest(host: str, subset: str = "") -> list[dict[str, Any]]:
    d: dict[str, Any] = {"host": host, "port": {"number": 80}}
    if subset:
        d["subset"] = subset
    return [{"destination": d}]


def uri(kind: str, value: str) -> dict[str, Any]:
    return {"uri": {kind: value}}


# --- Istio's TestMergeVirtualServices ---------------------------------------------------------

ROOT = vs("root-vs", "istio-system", hosts=["*.org"], http=[
    {"match": [uri("prefix", "/productpage"), uri("exact", "/login")],
     "delegate": {"name": "productpage-vs", "namespace": "default"}},
    {"route": dest("example.org")},
])


def delegate_vs(ns: str = "default", export_to: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"http": [
        {"match": [uri("prefix", "/productpage/v1")], "route": dest("productpage.org", "v1")},
        {"match": [uri("prefix", "/productpage/v2")], "route": dest("productpage.org", "v2")},
        {"route": dest("productpage.org", "v3")},
    ]}
    if export_to is not None:
        spec["exportTo"] = export_to
    return vs("productpage-vs", ns, **spec)


MERGED_HTTP = vs_docs(vs("expected", "istio-system", hosts=["*.org"], http=[
    {"match": [uri("prefix", "/productpage/v1")], "route": dest("productpage.org", "v1")},
    {"match": [uri("prefix", "/productpage/v2")], "route": dest("productpage.org", "v2")},
    {"match": [uri("prefix", "/productpage"), uri("exact", "/login")], "route": dest("productpage.org", "v3")},
    {"route": dest("example.org")},
]))[0].spec.http


def test_independent_vs_is_unchanged() -> None:
    docs = vs_docs(vs("virtual-service", "default", hosts=["example.org"], http=[{"route": dest("example.org")}]))
    assert merge_delegates(docs, SUFFIX) == docs


def test_a_delegate_alone_is_never_used() -> None:
    assert merge_delegates(vs_docs(delegate_vs()), SUFFIX) == []


def test_root_without_its_delegate_loses_only_that_route() -> None:
    (merged,) = merge_delegates(vs_docs(ROOT), SUFFIX)
    assert [r.route[0].destination.host for r in merged.spec.http] == ["example.org"]
    assert merged.meta == vs_docs(ROOT)[0].meta


def test_root_and_delegate_in_another_namespace_merge() -> None:
    (merged,) = merge_delegates(vs_docs(ROOT, delegate_vs()), SUFFIX)
    assert merged.spec.http == MERGED_HTTP
    assert merged.spec.hosts == ("*.org",) and merged.meta.namespace == "istio-system"


def test_delegate_order_does_not_matter() -> None:
    assert merge_delegates(vs_docs(delegate_vs(), ROOT), SUFFIX)[0].spec.http == MERGED_HTTP


def test_conflicting_delegate_route_is_dropped() -> None:
    conflicted = delegate_vs()
    conflicted["spec"]["http"][2] = {"match": [{"name": "mismatch", **uri("prefix", "/mis-match/path")}],
                                     "route": dest("productpage.org", "v3")}
    (merged,) = merge_delegates(vs_docs(ROOT, conflicted), SUFFIX)
    assert [r.route[0].destination.subset for r in merged.spec.http] == ["v1", "v2", ""]
    assert merged.spec.http[:2] == MERGED_HTTP[:2]


def test_multiple_routes_delegate_to_one_and_inherit_rewrite() -> None:
    root = vs("root-vs", "istio-system", hosts=["*.org"], http=[
        {"match": [uri("prefix", "/productpage")], "delegate": {"name": "productpage-vs", "namespace": "default"}},
        {"match": [uri("prefix", "/legacy/path")], "rewrite": {"uri": "/productpage"},
         "delegate": {"name": "productpage-vs", "namespace": "default"}},
    ])
    single = vs("productpage-vs", "default", http=[{"route": dest("productpage.org", "v1")}])
    (merged,) = merge_delegates(vs_docs(root, single), SUFFIX)
    expected = vs_docs(vs("e", "istio-system", hosts=["*.org"], http=[
        {"match": [uri("prefix", "/productpage")], "route": dest("productpage.org", "v1")},
        {"match": [uri("prefix", "/legacy/path")], "rewrite": {"uri": "/productpage"},
         "route": dest("productpage.org", "v1")},
    ]))[0].spec.http
    assert merged.spec.http == expected


def test_delegate_namespace_defaults_to_the_roots() -> None:
    root = dict(ROOT, metadata={"name": "default-vs", "namespace": "default"})
    root["spec"] = dict(ROOT["spec"], http=[
        dict(ROOT["spec"]["http"][0], delegate={"name": "productpage-vs"}), ROOT["spec"]["http"][1]
    ])
    (merged,) = merge_delegates(vs_docs(root, delegate_vs(export_to=[])), SUFFIX)
    assert merged.spec.http == MERGED_HTTP


def test_delegate_visibility_follows_its_export_to() -> None:
    def merged_subsets(export_to: list[str] | None) -> list[str]:
        (merged,) = merge_delegates(vs_docs(ROOT, delegate_vs(export_to=export_to)), SUFFIX)
        return [r.route[0].destination.subset for r in merged.spec.http]

    visible = ["v1", "v2", "v3", ""]
    assert merged_subsets(None) == visible  # no exportTo: the mesh default, everywhere
    assert merged_subsets(["*"]) == visible
    assert merged_subsets(["istio-system"]) == visible  # exported to the root's namespace
    assert merged_subsets([".", "istio-system"]) == visible
    assert merged_subsets(["."]) == [""]  # private to "default": the root cannot use it
    assert merged_subsets(["team-x"]) == [""]


def test_delegate_in_roots_namespace_visible_with_dot() -> None:
    root = dict(ROOT, metadata={"name": "root-vs", "namespace": "default"})
    (merged,) = merge_delegates(vs_docs(root, delegate_vs(export_to=["."])), SUFFIX)
    assert merged.spec.http == MERGED_HTTP


def test_find_delegate_says_why_there_is_none() -> None:
    docs = vs_docs(ROOT, delegate_vs(export_to=["."]), vs("has-hosts", "default", hosts=["a.org"],
                                                          http=[{"route": dest("a.org")}]))
    all_vs = by_key(docs)
    root = docs[0]

    def problem(name: str, ns: str = "default") -> str:
        route = HTTPRoute(delegate=type(root.spec.http[0].delegate)(name=name, namespace=ns))
        return find_delegate(root, route, all_vs).problem

    assert problem("productpage-vs") == "delegate VirtualService default/productpage-vs is not exported to namespace istio-system"
    assert problem("missing") == "delegate VirtualService default/missing not found"
    assert problem("has-hosts") == "VirtualService default/has-hosts has hosts, so it is not a delegate"


def test_delegate_short_names_resolve_in_the_delegates_namespace() -> None:
    root = vs("reviews", "default", hosts=["reviews"], http=[
        {"match": [uri("prefix", "/v2")], "delegate": {"name": "reviews-v2", "namespace": "team"}},
        {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
    ])
    delegate = vs("reviews-v2", "team", http=[
        {"route": [{"destination": {"host": "reviews.default", "subset": "v2"}}],
         "mirror": {"host": "shadow"}, "mirrorPercentage": {"value": 5.0}},
    ])
    (merged,) = merge_delegates(vs_docs(root, delegate), SUFFIX)
    first, second = merged.spec.http
    assert first.route[0].destination.host == "reviews.default"  # has a dot: left as written
    assert first.mirror is not None and first.mirror.host == "shadow.team.svc.cluster.local"
    assert second.route[0].destination.host == "reviews"  # the root's own: resolved later, in its namespace


# --- Istio's TestMergeHttpRoutes ----------------------------------------------------------------


def test_root_catch_all_passes_timeout_and_headers_down() -> None:
    (root,) = vs_docs(vs("r", "default", hosts=["a.org"], http=[{
        "timeout": "10s", "headers": {"request": {"add": {"istio": "test"}, "remove": ["trace-id"]}},
        "delegate": {"name": "d", "namespace": "default"}}]))[0].spec.http
    delegate_http = vs_docs(vs("d", "default", http=[
        {"match": [{**uri("prefix", "/productpage/v1"), "headers": {"version": {"exact": "v1"}}}],
         "route": dest("productpage.org", "v1")},
        {"match": [{**uri("prefix", "/productpage/v2"), "headers": {"version": {"exact": "v2"}}},
                   {"headers": {"version": {"exact": "v2"}}, "queryParams": {"version": {"exact": "v2"}}}],
         "route": dest("productpage.org", "v2"), "timeout": "2s"},
    ]))[0].spec.http
    merged = merge_routes(root, delegate_http)
    assert [r.match for r in merged] == [r.match for r in delegate_http]  # no root match: theirs as is
    assert [r.timeout for r in merged] == [timedelta(seconds=10), timedelta(seconds=2)]
    assert all(r.headers == root.headers and r.delegate is None for r in merged)


def test_delegate_matches_take_the_roots_port_and_uri() -> None:
    root = HTTPRoute(match=(M(uri=prefix("/productpage"), port=8080),))
    v1 = HTTPRoute(name="v1", match=(M(uri=prefix("/productpage/v1"), headers={"version": exact("v1")}),))
    v2 = HTTPRoute(match=(M(uri=prefix("/productpage/v2"), headers={"version": exact("v2")}),
                          M(headers={"version": exact("v2")}, query_params={"version": exact("v2")})))
    v3 = HTTPRoute()  # catch-all in the delegate
    merged = merge_routes(root, [v1, v2, v3])
    assert [r.match for r in merged] == [
        (M(uri=prefix("/productpage/v1"), headers={"version": exact("v1")}, port=8080),),
        (M(uri=prefix("/productpage/v2"), headers={"version": exact("v2")}, port=8080),
         M(uri=prefix("/productpage"), headers={"version": exact("v2")}, query_params={"version": exact("v2")}, port=8080)),
        (M(uri=prefix("/productpage"), port=8080),),
    ]
    assert merged[0].name == "v1"


def test_names_join_root_and_delegate() -> None:
    root = HTTPRoute(name="root", match=(M(name="rm", uri=prefix("/a")),))
    merged = merge_routes(root, [HTTPRoute(name="leaf", match=(M(name="lm", uri=prefix("/a/b")),)),
                                 HTTPRoute(match=(M(uri=exact("/a/c")),))])
    assert [r.name for r in merged] == ["root-leaf", "root"]
    assert [m.name for r in merged for m in r.match] == ["rm-lm", "rm"]


# --- Istio's TestMergeHTTPMatchRequests and TestHasConflict -----------------------------------


def test_uri_matches_nest() -> None:
    root = (M(uri=prefix("/productpage")),)
    assert merge_matches(root, (M(uri=exact("/productpage/v1")),)) == (M(uri=exact("/productpage/v1")),)
    two = (M(uri=prefix("/productpage")), M(uri=prefix("/reviews")))
    leaf = (M(uri=exact("/productpage/v1")), M(uri=exact("/reviews/v1")))
    assert merge_matches(two, leaf) == leaf
    assert merge_matches(root, (M(uri=exact("/reviews")),)) is None
    # one delegate match that fits no root match drops the whole delegate route
    assert merge_matches(root, (M(uri=exact("/productpage/v1")), M(uri=exact("/reviews")))) is None


def test_header_matches_combine_or_conflict() -> None:
    root = (M(headers={"header": exact("h1")}),)
    assert merge_matches(root, ()) == root
    assert merge_matches(root, (M(headers={"header": exact("h2")}),)) is None
    assert merge_matches(root, (M(headers={"header-2": exact("h2")}),)) == (
        M(headers={"header": exact("h1"), "header-2": exact("h2")}),
    )


def test_complicated_merge() -> None:
    root = (M(uri=prefix("/productpage"), headers={"header": exact("h1")}, port=8080,
              authority=exact("productpage.com")),)
    leaf = (M(uri=exact("/productpage/v1"), headers={"header": exact("h1")}, query_params={"q": exact("1")}),)
    assert merge_matches(root, leaf) == (
        M(uri=exact("/productpage/v1"), headers={"header": exact("h1")}, query_params={"q": exact("1")},
          port=8080, authority=exact("productpage.com")),
    )


def test_string_match_conflicts() -> None:
    def conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
        return has_conflict(M(uri=root), M(uri=leaf))

    assert not conflict(None, exact("/a")) and not conflict(prefix("/a"), None)
    assert not conflict(prefix("/a"), prefix("/a/b")) and not conflict(prefix("/a"), exact("/a/b"))
    assert conflict(prefix("/a/b"), prefix("/a")) and conflict(prefix("/a/b"), exact("/a"))
    assert not conflict(exact("/a"), exact("/a"))
    assert conflict(exact("/a"), exact("/b")) and conflict(exact("/a"), prefix("/a"))
    assert conflict(StringMatch(regex="/a.*"), prefix("/a")) and conflict(prefix("/a"), StringMatch(regex="/a.*"))
    assert conflict(StringMatch(regex="/a.*"), StringMatch(regex="/a.*"))


def test_other_match_fields_conflict_as_istio() -> None:
    assert has_conflict(M(ignore_uri_case=True), M())
    assert has_conflict(M(port=8080), M(port=9090)) and not has_conflict(M(port=8080), M())
    assert not has_conflict(M(), M(port=9090))
    # As Istio: a root sourceNamespace must be repeated by the delegate match.
    assert has_conflict(M(source_namespace="a"), M()) and not has_conflict(M(source_namespace="a"), M(source_namespace="a"))
    assert not has_conflict(M(), M(source_namespace="b"))
    assert has_conflict(M(source_labels={"app": "a"}), M(source_labels={"app": "b"}))
    assert not has_conflict(M(source_labels={"app": "a"}), M(source_labels={"version": "v1"}))
    assert not has_conflict(M(gateways=("ns/gw", "mesh")), M(gateways=("mesh",)))
    assert has_conflict(M(gateways=("mesh",)), M(gateways=("mesh", "ns/gw")))
    assert has_conflict(M(gateways=("ns/gw",)), M(gateways=("mesh",)))
    assert has_conflict(M(without_headers={"x": exact("1")}), M(without_headers={"x": exact("2")}))
    assert has_conflict(M(query_params={"x": exact("1")}), M(query_params={"x": prefix("1")}))


def test_gateway_names_resolve_as_istio() -> None:
    assert gateway_name("mesh", "ns") == "mesh"
    assert gateway_name("gw", "ns") == "ns/gw"
    assert gateway_name("./gw", "ns") == "ns/gw"
    assert gateway_name("other/gw", "ns") == "other/gw"
    assert gateway_name("gw.other.svc.cluster.local", "ns") == "other/gw"
    assert gateway_name("gw.other", "ns") == "other/gw"


def test_root_and_delegate_gateways_compare_resolved() -> None:
    root = vs("r", "default", hosts=["a.org"], gateways=["gw", "mesh"], http=[
        {"match": [{"gateways": ["gw"]}], "delegate": {"name": "d", "namespace": "team"}}])
    same = vs("d", "team", http=[{"match": [{"gateways": ["default/gw"]}], "route": dest("a.org")}])
    other = vs("d", "team", http=[{"match": [{"gateways": ["gw"]}], "route": dest("a.org")}])  # team/gw
    (merged,) = merge_delegates(vs_docs(root, same), SUFFIX)
    assert [m.gateways for r in merged.spec.http for m in r.match] == [("default/gw",)]
    assert merge_delegates(vs_docs(root, other), SUFFIX)[0].spec.http == ()
