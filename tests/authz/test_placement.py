"""Where the RBAC filters go and which policies apply: inbound HTTP chains get HTTP RBAC, TCP
chains (and the inbound passthrough chain) network RBAC, in Istio's order and after
jwt_authn; root namespace -> namespace -> workload selection; one computation per namespace
and labels."""

from __future__ import annotations

from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2

from controlplane.model.mesh import mesh_config_from_yaml
from controlplane.translate import filters
from controlplane.translate.authz import workload_rbac
from tests.authz.support import (
    HTTP_RBAC,
    NETWORK_RBAC,
    Chains,
    chains,
    connect,
    context,
    get,
    http,
    policy,
    proxy,
    tcp,
)

DENY_ALL = policy("deny-all", "{}")
ALLOW_SLEEP = policy("allow-sleep", """
    rules:
    - from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]
""")


def _kinds(c: Chains, listeners) -> set[str]:
    """The kinds of the network filters of ``listeners`` (RBAC whatever its ECDS name)."""
    return set(c.kinds([f for lst in listeners for fc in [*lst.filter_chains, lst.default_filter_chain] for f in fc.filters]))


def test_no_policy_no_rbac_filter() -> None:
    c = chains(context(""))
    assert NETWORK_RBAC not in _kinds(c, c.listeners)
    assert c.kinds(c.http_filters()).count(HTTP_RBAC) == 0


def test_deny_all_refuses_http_tcp_and_undeclared_ports() -> None:
    ctx = context(DENY_ALL)
    assert not http(ctx, get()).allowed
    assert not tcp(ctx, connect()).allowed
    assert not tcp(ctx, connect(port=9999), chain="InboundPassthroughCluster").allowed
    assert not tcp(ctx, connect(principal=None), chain="inbound|5432||-plaintext").allowed


def test_rbac_filters_only_on_inbound_chains() -> None:
    c = chains(context(DENY_ALL))
    outbound = [lst for lst in c.listeners if lst.name != "virtualInbound"]
    assert NETWORK_RBAC not in _kinds(c, outbound)
    # HTTP chains carry no network RBAC (the HTTP filter does the work), TCP chains no HCM.
    assert NETWORK_RBAC not in c.kinds(list(c.chain("inbound|8000||-mtls").filters))
    # One filter per action (AUDIT and DENY have no policy here: they let everything through).
    tcp_chain = list(c.chain("inbound|5432||-mtls").filters)
    assert c.kinds(tcp_chain) == [NETWORK_RBAC] * 3 + ["envoy.filters.network.tcp_proxy"]
    assert [f.name for f in tcp_chain[:3]] == ["foo.tcp-rbac-audit", "foo.tcp-rbac-deny", "foo.tcp-rbac-allow"]


def test_istios_order_audit_deny_allow_then_the_rest() -> None:
    ctx = context(ALLOW_SLEEP + policy("deny-admin", """
        action: DENY
        rules: [{to: [{operation: {paths: [/admin]}}]}]
    """) + policy("audit", """
        action: AUDIT
        rules: [{}]
    """))
    c = chains(ctx)
    names = c.kinds(c.http_filters())
    rbac = c.http_rbac()
    assert [r.rules.action for r in rbac] == [2, 1, 0]  # LOG, DENY, ALLOW
    assert names.index(HTTP_RBAC) < names.index("envoy.filters.http.fault") < names.index("envoy.filters.http.router")
    positions = {f.name: f.position for f in filters.HTTP_FILTERS}
    assert positions.get("envoy.filters.http.jwt_authn", 0) < positions[HTTP_RBAC]


def test_selector_namespace_and_root_namespace() -> None:
    ctx = context(
        policy("other-ns", "{}", namespace="bar")
        + policy("other-app", "{selector: {matchLabels: {app: other}}}")
        + policy("mesh-wide-selector", """
            selector: {matchLabels: {version: v1}}
            action: DENY
            rules: [{to: [{operation: {paths: [/v1-only]}}]}]
        """, namespace="istio-system")
    )
    assert http(ctx, get("/")).allowed  # bar's deny-all and other's do not apply
    assert not http(ctx, get("/v1-only")).allowed  # root namespace + selector: every namespace
    assert http(ctx, get("/v1-only"), proxy(labels={"app": "httpbin", "version": "v2"})).allowed
    # A root-namespace policy without selector applies to everyone.
    mesh = context(policy("mesh-deny-all", "{}", namespace="istio-system"))
    assert not tcp(mesh, connect(), proxy("bar", {"app": "x"}), chain="InboundPassthroughCluster").allowed


def test_target_ref_and_custom_policies_are_not_this_filters() -> None:
    ctx = context(policy("gw", """
        targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]
    """) + policy("ext", """
        action: CUSTOM
        provider: {name: ext}
        rules: [{to: [{operation: {paths: [/ext]}}]}]
    """))
    # Only the CUSTOM filter (ext_authz's: its provider is unknown here, so it denies).
    names = [name for rbac in chains(ctx).http_rbac() for name in rbac.rules.policies]
    assert names == ["istio-ext-authz-ext-ns[foo]-policy[ext]-rule[0]-deny-due-to-bad-CUSTOM-action"]


def test_policy_names_and_the_403_body_are_istios() -> None:
    rbac = [r for r in chains(context(ALLOW_SLEEP + DENY_ALL)).http_rbac() if r.HasField("rules")]
    assert sorted(rbac[0].rules.policies) == [
        "ns[foo]-policy[allow-sleep]-rule[0]", "ns[foo]-policy[deny-all]-rule[0]",
    ]
    # No custom denial: Envoy answers 403 "RBAC: access denied" itself.
    assert rbac[0].rules_stat_prefix == "" and not rbac[0].HasField("matcher")


def test_dry_run_policies_are_shadow_rules_with_their_stats() -> None:
    ctx = context(policy("try-deny", """
        action: DENY
        rules: [{to: [{operation: {paths: [/admin]}}]}]
    """, annotations='{"istio.io/dry-run": "true"}') + policy("try-allow", """
        rules: [{from: [{source: {namespaces: [bar]}}]}]
    """, annotations='{"istio.io/dry-run": "true"}'))
    audit, deny, allow = chains(ctx).http_rbac()
    assert audit == http_rbac_pb2.RBAC(shadow_rules_stat_prefix="istio_dry_run_allow_")  # no AUDIT policy
    assert not deny.HasField("rules") and deny.shadow_rules_stat_prefix == "istio_dry_run_deny_"
    assert not allow.HasField("rules") and allow.shadow_rules_stat_prefix == "istio_dry_run_allow_"
    outcome = http(ctx, get("/admin"))
    assert outcome.allowed and outcome.shadow == (("ALLOW", False), ("DENY", False))


def test_computed_once_per_namespace_and_labels() -> None:
    ctx = context(ALLOW_SLEEP + policy("v2", "{selector: {matchLabels: {version: v2}}, rules: [{}]}"))
    a, b = proxy(labels={"app": "httpbin", "version": "v1"}), proxy(labels={"app": "httpbin", "version": "v1"})
    assert workload_rbac(ctx, a, tcp=False) is workload_rbac(ctx, b, tcp=False)
    assert workload_rbac(ctx, proxy(labels={"app": "x", "version": "v2"}), tcp=False) is not workload_rbac(ctx, a, tcp=False)
    assert len(ctx.memo.authz) == 2
    # Where no policy selects by labels, labels are not part of the key.
    plain = context(ALLOW_SLEEP)
    workload_rbac(plain, proxy(labels={"app": "a"}), tcp=False)
    workload_rbac(plain, proxy(labels={"app": "b"}), tcp=False)
    assert list(plain.memo.authz) == [("foo", None, False)]


def test_trust_domain_aliases_from_the_mesh_config() -> None:
    mesh = mesh_config_from_yaml("trustDomainAliases: [old-td]")
    ctx = context(policy("allow", """
        rules: [{from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]}]
    """), mesh)
    assert http(ctx, get(principal="spiffe://old-td/ns/foo/sa/sleep")).allowed
    assert http(ctx, get(principal="spiffe://cluster.local/ns/foo/sa/sleep")).allowed
    assert not http(ctx, get(principal="spiffe://other-td/ns/foo/sa/sleep")).allowed


def test_http_config_is_the_http_rbac_type() -> None:
    c = chains(context(DENY_ALL))
    rbac = [f for f in c.http_filters() if c.kinds([f]) == [HTTP_RBAC]]
    assert [f.name for f in rbac] == ["foo.rbac-audit", "foo.rbac-deny", "foo.rbac-allow"]
    for f in rbac:  # served over ECDS, that type only
        assert list(f.config_discovery.type_urls) == ["type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"]
        assert c.typed_config(f).Is(http_rbac_pb2.RBAC.DESCRIPTOR)


def test_the_jwt_contract_matches_the_jwt_authn_filter() -> None:
    """requestPrincipals and request.auth.* read what jwt_authn writes: its filter name and
    the ``payload_in_metadata`` key of every provider."""
    from controlplane.translate.authz import matchers
    from controlplane.translate.filters import jwt_authn

    assert (matchers.JWT_FILTER, matchers.JWT_PAYLOAD) == (jwt_authn.JWT_AUTHN_FILTER, jwt_authn.PAYLOAD_IN_METADATA)
