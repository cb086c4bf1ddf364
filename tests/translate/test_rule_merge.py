"""DestinationRules for one host in one namespace, merged as Istio merges them: the oldest keeps
its fields and gains the others' subsets (and a traffic policy where it has none); other exportTo
or selectors stand apart; a Gateway API backend policy's rule fills only what the user's leaves
unset. A split DestinationRule (subsets in one, policy in another) is common Istio practice."""

from __future__ import annotations

from typing import Any

from controlplane.model import parse
from controlplane.model.destination_rule import DestinationRule
from controlplane.translate import push_context, translate
from controlplane.translate.index.rule_merge import merge_namespace_rules
from controlplane.xds import types
from tests.translate.support import mesh_from, proxy_from, snapshot_of


def _rule(name: str, spec: dict[str, Any], created: str = "2024-01-01T00:00:00Z",
          annotations: dict[str, str] | None = None) -> DestinationRule:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "creationTimestamp": created}
    if annotations:
        meta["annotations"] = annotations
    rule = parse({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": meta,
                  "spec": {"host": "reviews", **spec}})
    assert isinstance(rule, DestinationRule)
    return rule


def _merged(*rules: DestinationRule) -> list[DestinationRule]:
    return merge_namespace_rules(rules, lambda r: r.spec.host)


def _subsets(rule: DestinationRule) -> list[str]:
    return [s.name for s in rule.spec.subsets]


def test_the_oldest_rule_gains_the_others_subsets_and_a_policy_where_it_has_none() -> None:
    older = _rule("a", {"subsets": [{"name": "v1", "labels": {"version": "v1"}}]}, "2024-01-01T00:00:00Z")
    newer = _rule("b", {"trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}},
                        "subsets": [{"name": "v1", "labels": {"version": "other"}}, {"name": "v3", "labels": {"version": "v3"}}]},
                  "2024-01-02T00:00:00Z")
    (merged,) = _merged(newer, older)  # listed newest first: creation time decides
    assert merged.meta.name == "a" and _subsets(merged) == ["v1", "v3"]
    assert merged.spec.subsets[0].labels == {"version": "v1"}  # a duplicate name keeps the oldest's
    assert merged.spec.traffic_policy is not None and merged.spec.traffic_policy.load_balancer is not None
    with_policy = _rule("a", {"trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}})
    (kept,) = _merged(with_policy, newer)
    assert kept.spec.traffic_policy is not None and kept.spec.traffic_policy.load_balancer is not None
    assert kept.spec.traffic_policy.load_balancer.simple == "ROUND_ROBIN"  # the oldest's policy stays


def test_other_export_or_selectors_stand_apart_and_an_untouched_rule_is_the_same_object() -> None:
    local = _rule("a", {"exportTo": ["default"], "subsets": [{"name": "v1", "labels": {"version": "v1"}}]})
    wider = _rule("b", {"exportTo": ["default", "web"], "subsets": [{"name": "v2", "labels": {"version": "v2"}}]},
                  "2024-01-02T00:00:00Z")
    (merged_local,) = _merged(local, wider)  # a wider export is merged in (the oldest's export holds)
    assert _subsets(merged_local) == ["v1", "v2"] and merged_local.spec.export_to == ("default",)
    everywhere = _rule("c", {"subsets": [{"name": "v3", "labels": {"version": "v3"}}]}, "2024-01-03T00:00:00Z")
    assert [r is o for r, o in zip(_merged(local, everywhere), (local, everywhere), strict=True)] == [True, True]
    selected = _rule("c", {"workloadSelector": {"matchLabels": {"app": "x"}}})
    other = _rule("d", {"workloadSelector": {"matchLabels": {"app": "y"}}}, "2024-01-02T00:00:00Z")
    assert [r is o for r, o in zip(_merged(selected, other), (selected, other), strict=True)] == [True, True]


def test_a_backend_policy_rule_fills_only_what_the_users_rule_leaves_unset() -> None:
    generated = _rule("generated", {"trafficPolicy": {
        "tls": {"mode": "SIMPLE", "sni": "reviews.example.com"}, "loadBalancer": {"simple": "RANDOM"}}},
        "2023-01-01T00:00:00Z", annotations={"internal.istio.io/parents": "BackendTLSPolicy/default.reviews"})
    user = _rule("mine", {"trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}}})
    for order in ((generated, user), (user, generated)):
        (merged,) = _merged(*order)
        policy = merged.spec.traffic_policy
        assert policy is not None and policy.load_balancer is not None and policy.tls is not None
        assert (policy.load_balancer.simple, policy.tls.sni) == ("LEAST_REQUEST", "reviews.example.com")


def test_a_split_rule_gives_every_subset_a_cluster() -> None:
    docs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "default"},
             "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}]
    rules = [_rule("a", {"subsets": [{"name": "v1", "labels": {"version": "v1"}}]}),
             _rule("b", {"subsets": [{"name": "v3", "labels": {"version": "v3"}}]}, "2024-01-02T00:00:00Z")]
    ctx = push_context(snapshot_of([*(parse(d) for d in docs), *rules]), mesh_from({}))
    names = {c.name for c in translate(ctx, proxy_from({"namespace": "default"}))[types.CLUSTER]}
    assert {"outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v3|reviews.default.svc.cluster.local"} <= names
