"""Every source field, operation field and ``when`` key, with its ``not`` form, as Envoy
decides on the RBAC we generate (evaluated with Envoy's semantics, see ``rbac_eval``)."""

from __future__ import annotations

import pytest

from tests.authz.rbac_eval import Request
from tests.authz.support import connect, context, get, http, policy, tcp

SLEEP = "spiffe://cluster.local/ns/foo/sa/sleep"
BAR = "spiffe://cluster.local/ns/bar/sa/web"


def allow(rule: str) -> object:
    return context(policy("p", f"rules:\n- {rule}"))


def deny(rule: str) -> object:
    return context(policy("p", f"action: DENY\nrules:\n- {rule}"))


CASES: list[tuple[str, Request, bool]] = [
    # principals: exact, prefix, suffix, any; only on mTLS
    ("from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]", get(), True),
    ("from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]", get(principal=BAR), False),
    ("from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]", get(principal=None), False),
    ("from: [{source: {principals: [cluster.local/ns/foo/*]}}]", get(), True),
    ("from: [{source: {principals: ['*/sa/web']}}]", get(principal=BAR), True),
    ("from: [{source: {principals: ['*']}}]", get(), True),
    ("from: [{source: {principals: ['*']}}]", get(principal=None), False),
    ("from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/sleep]}}]", get(principal=BAR), True),
    ("from: [{source: {notPrincipals: [cluster.local/ns/foo/sa/sleep]}}]", get(), False),
    # namespaces (from the peer's SPIFFE ID)
    ("from: [{source: {namespaces: [foo]}}]", get(), True),
    ("from: [{source: {namespaces: [foo]}}]", get(principal="spiffe://cluster.local/ns/foo-x/sa/a"), False),
    ("from: [{source: {namespaces: ['b*']}}]", get(principal=BAR), True),
    ("from: [{source: {notNamespaces: [foo]}}]", get(principal=BAR), True),
    ("from: [{source: {notNamespaces: [foo]}}]", get(), False),
    # serviceAccounts: <sa> in the policy's namespace, or <ns>/<sa>
    ("from: [{source: {serviceAccounts: [sleep]}}]", get(), True),
    ("from: [{source: {serviceAccounts: [bar/web]}}]", get(principal=BAR), True),
    ("from: [{source: {serviceAccounts: [sleep]}}]", get(principal="spiffe://cluster.local/ns/foo/sa/sleepy"), False),
    ("from: [{source: {notServiceAccounts: [sleep]}}]", get(principal=BAR), True),
    # trustDomains
    ("from: [{source: {trustDomains: [cluster.local]}}]", get(), True),
    ("from: [{source: {trustDomains: [other.td]}}]", get(), False),
    ("from: [{source: {notTrustDomains: ['cluster*']}}]", get(), False),
    # ipBlocks (the direct peer) and remoteIpBlocks (the original client)
    ("from: [{source: {ipBlocks: [10.0.0.0/24]}}]", get(source_ip="10.0.0.7"), True),
    ("from: [{source: {ipBlocks: [10.0.0.0/24]}}]", get(source_ip="10.0.1.7"), False),
    ("from: [{source: {notIpBlocks: [10.0.0.7]}}]", get(source_ip="10.0.0.7"), False),
    ("from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]", get(remote_ip="203.0.113.9"), True),
    ("from: [{source: {notRemoteIpBlocks: [203.0.113.0/24]}}]", get(remote_ip="203.0.113.9"), False),
    # requestPrincipals: jwt_authn's verified payload (iss/sub)
    ("from: [{source: {requestPrincipals: [https://idp/alice]}}]", get(jwt={"iss": "https://idp", "sub": "alice"}), True),
    ("from: [{source: {requestPrincipals: [https://idp/alice]}}]", get(jwt={"iss": "https://idp", "sub": "bob"}), False),
    ("from: [{source: {requestPrincipals: [https://idp/alice]}}]", get(), False),
    ("from: [{source: {requestPrincipals: ['*']}}]", get(jwt={"iss": "x", "sub": "y"}), True),
    ("from: [{source: {requestPrincipals: ['https://idp/*']}}]", get(jwt={"iss": "https://idp", "sub": "z"}), True),
    ("from: [{source: {requestPrincipals: ['*/alice']}}]", get(jwt={"iss": "any", "sub": "alice"}), True),
    ("from: [{source: {notRequestPrincipals: ['*']}}]", get(), True),
    ("from: [{source: {notRequestPrincipals: ['*']}}]", get(jwt={"iss": "x", "sub": "y"}), False),
    # hosts (case-insensitive), methods, paths, ports
    ("to: [{operation: {hosts: [httpbin.foo]}}]", get(host="HTTPBIN.foo"), True),
    ("to: [{operation: {hosts: ['*.foo']}}]", get(host="httpbin.foo"), True),
    ("to: [{operation: {hosts: ['httpbin.*']}}]", get(host="other.foo"), False),
    ("to: [{operation: {notHosts: [httpbin.foo]}}]", get(host="httpbin.foo"), False),
    ("to: [{operation: {methods: [GET]}}]", get(), True),
    ("to: [{operation: {methods: [GET]}}]", get(method="POST"), False),
    ("to: [{operation: {notMethods: [POST]}}]", get(method="POST"), False),
    ("to: [{operation: {paths: [/a]}}]", get("/a?x=1"), True),
    ("to: [{operation: {paths: [/a]}}]", get("/a/b"), False),
    ("to: [{operation: {paths: ['/a/*']}}]", get("/a/b/c"), True),
    ("to: [{operation: {paths: ['*.png']}}]", get("/x/y.png"), True),
    ("to: [{operation: {paths: ['/a/{*}/c']}}]", get("/a/b/c"), True),
    ("to: [{operation: {paths: ['/a/{*}/c']}}]", get("/a/b/b/c"), False),
    ("to: [{operation: {paths: ['/a/{**}/c']}}]", get("/a/b/b/c"), True),
    ("to: [{operation: {notPaths: ['/admin*']}}]", get("/admin/x"), False),
    ("to: [{operation: {ports: ['8000']}}]", get(), True),
    ("to: [{operation: {ports: ['9000']}}]", get(), False),
    ("to: [{operation: {notPorts: ['8000']}}]", get(), False),
    # when
    ("when: [{key: 'request.headers[x-team]', values: [blue]}]", get(headers={"x-team": "blue"}), True),
    ("when: [{key: 'request.headers[x-team]', values: [blue]}]", get(), False),
    ("when: [{key: 'request.headers[x-team]', notValues: ['*']}]", get(), True),
    ("when: [{key: 'request.headers[:method]', values: [GET]}]", get(), True),
    ("when: [{key: source.ip, values: [10.0.0.0/8]}]", get(source_ip="10.9.9.9"), True),
    ("when: [{key: remote.ip, notValues: [10.0.0.1]}]", get(), False),
    ("when: [{key: source.namespace, values: [foo]}]", get(), True),
    ("when: [{key: source.principal, values: [cluster.local/ns/foo/sa/sleep]}]", get(), True),
    ("when: [{key: source.serviceAccount, values: [foo/sleep]}]", get(), True),
    ("when: [{key: request.auth.principal, values: [iss/sub]}]", get(jwt={"iss": "iss", "sub": "sub"}), True),
    ("when: [{key: request.auth.audiences, values: [api]}]", get(jwt={"aud": ["web", "api"]}), True),
    ("when: [{key: request.auth.audiences, values: [api]}]", get(jwt={"aud": "api"}), True),
    ("when: [{key: request.auth.audiences, values: [api]}]", get(jwt={"aud": "web"}), False),
    ("when: [{key: request.auth.presenter, values: ['client-*']}]", get(jwt={"azp": "client-1"}), True),
    ("when: [{key: 'request.auth.claims[groups]', values: [admin]}]", get(jwt={"groups": ["dev", "admin"]}), True),
    ("when: [{key: 'request.auth.claims[groups]', notValues: [admin]}]", get(jwt={"groups": ["admin"]}), False),
    ("when: [{key: 'request.auth.claims[org][team]', values: [core]}]", get(jwt={"org": {"team": "core"}}), True),
    ("when: [{key: 'request.auth.claims[org][team]', values: [core]}]", get(jwt={"team": "core"}), False),
    ("when: [{key: destination.ip, values: [10.0.0.2]}]", get(), True),
    ("when: [{key: destination.port, values: ['8000']}]", get(), True),
    ("when: [{key: destination.port, notValues: ['8000']}]", get(), False),
    ("when: [{key: connection.sni, values: ['*.svc.cluster.local']}]", get(sni="outbound_.8000_._.httpbin.foo.svc.cluster.local"), True),
    ("when: [{key: connection.sni, values: ['*.svc.cluster.local']}]", get(), False),
    ("when: [{key: 'experimental.envoy.filters.my.filter[k]', values: [v]}]", get(metadata={"envoy.filters.my.filter": {"k": "v"}}), True),
    # rules, from, to, when combined: OR of rules and of entries, AND of fields
    ("{}", get(principal=None), True),
    ("{from: [{source: {namespaces: [bar]}}, {source: {namespaces: [foo]}}], to: [{operation: {methods: [GET]}}]}", get(), True),
    ("{from: [{source: {namespaces: [foo]}}], to: [{operation: {methods: [POST]}}]}", get(), False),
]


@pytest.mark.parametrize(("rule", "request_", "matches"), CASES, ids=[f"{i}" for i in range(len(CASES))])
def test_allow_and_deny(rule: str, request_: Request, matches: bool) -> None:
    assert http(allow(rule), request_).allowed is matches, "ALLOW"
    if rule != "{}":
        assert http(deny(rule), request_).allowed is not matches, "DENY"


def test_allow_with_no_rules_denies_everything_and_an_empty_rule_allows_everything() -> None:
    assert not http(context(policy("p", "{}")), get()).allowed
    assert http(context(policy("p", "rules: [{}]")), get(principal=None)).allowed


def test_deny_wins_over_allow_and_audit_never_blocks() -> None:
    ctx = context(policy("a", "rules: [{}]") + policy("d", "action: DENY\nrules: [{to: [{operation: {paths: [/x]}}]}]")
                  + policy("l", "action: AUDIT\nrules: [{to: [{operation: {paths: [/x, /y]}}]}]"))
    assert not http(ctx, get("/x")).allowed
    y = http(ctx, get("/y"))
    assert y.allowed and y.logged


# --- TCP chains: HTTP-only fields as Istio handles them --------------------------------------


def test_tcp_allow_drops_rules_that_need_http() -> None:
    ctx = context(policy("p", """
        rules:
        - to: [{operation: {methods: [GET]}}]
        - from: [{source: {namespaces: [foo]}}]
          to: [{operation: {ports: ['5432'], paths: [/x]}}]
        - from: [{source: {principals: [cluster.local/ns/foo/sa/db-client]}}]
          to: [{operation: {ports: ['5432']}}]
    """))
    assert not tcp(ctx, connect()).allowed  # only rule[2] survives
    assert tcp(ctx, connect(principal="spiffe://cluster.local/ns/foo/sa/db-client")).allowed
    assert http(ctx, get()).allowed  # on the HTTP port rule[0] allows GET


def test_tcp_deny_matches_more_without_its_http_fields() -> None:
    ctx = context(policy("p", """
        action: DENY
        rules:
        - from: [{source: {namespaces: [bar]}}]
          to: [{operation: {methods: [GET], ports: ['5432']}}]
    """))
    assert not tcp(ctx, connect(principal=BAR)).allowed  # methods ignored: all of bar on 5432
    assert tcp(ctx, connect()).allowed
    assert http(ctx, get(principal=BAR, method="POST", port=5432)).allowed  # on HTTP the method counts


def test_tcp_only_fields_work_on_tcp() -> None:
    ctx = context(policy("p", """
        rules:
        - from: [{source: {principals: [cluster.local/ns/foo/sa/sleep], ipBlocks: [10.0.0.0/8]}}]
          to: [{operation: {ports: ['5432']}}]
          when: [{key: connection.sni, values: ['*.cluster.local']}, {key: destination.ip, values: [10.0.0.0/8]}]
    """))
    assert tcp(ctx, connect(sni="outbound_.5432_._.db.foo.svc.cluster.local")).allowed
    assert not tcp(ctx, connect(sni="x.example")).allowed
    assert not tcp(ctx, connect(principal=None, sni="outbound_.5432_._.db.foo.svc.cluster.local")).allowed
