"""AuthorizationPolicy CUSTOM -> ext_authz on a sidecar's inbound chains (translation only;
real Envoy in ``test_ext_authz_envoy.py``, Istio's own cases in ``test_corpus.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.network.ext_authz.v3 import ext_authz_pb2 as net_ext_authz_pb2

from controlplane.model.base import ValidationError
from controlplane.model.mesh import MeshConfig, mesh_config_from_yaml, parse_document
from controlplane.translate import CLUSTER_TYPE, translate
from controlplane.translate.authz.ext_authz import workload_custom
from controlplane.translate.index.context import PushContext
from tests.authz.chain_eval import Filter, run, unpack
from tests.authz.rbac_eval import Request
from tests.authz.support import JWT_KEY, chains, context, get, policy, proxy

HTTP_EXT_AUTHZ, NETWORK_EXT_AUTHZ = (
    "envoy.filters.http.ext_authz",
    "envoy.filters.network.ext_authz",
)

MESH = mesh_config_from_yaml("""
extensionProviders:
- name: grpc-local               # outside the registry, on an IP: a static plain cluster
  envoyExtAuthzGrpc: {service: 127.0.0.1, port: "9191", failOpen: true, timeout: 2s}
- name: http-mesh                # a registry service: its outbound cluster
  envoyExtAuthzHttp:
    service: foo/authz.foo.svc.cluster.local
    port: 8000
    statusOnError: "503"
    includeRequestHeadersInCheck: [x-ext-authz]
    headersToUpstreamOnAllow: [x-ext-authz-check-*]
    headersToDownstreamOnDeny: [x-ext-authz-check-*]
- name: http-external            # a hostname outside the registry: DNS
  envoyExtAuthzHttp: {service: authz.example.com, port: 443}
- name: tracer
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
""")
AUTHZ_SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: authz, namespace: foo}
spec: {selector: {app: authz}, ports: [{name: http, port: 8000}]}
"""


def custom(
    name: str, provider: str, rules: str = "[{to: [{operation: {paths: [/ext*]}}]}]", **kw: str
) -> str:
    return policy(name, f"action: CUSTOM\nprovider: {{name: {provider}}}\nrules: {rules}", **kw)


def ctx_of(*policies: str, mesh: MeshConfig = MESH) -> PushContext:
    return context(AUTHZ_SERVICE + "".join(policies), mesh)


ECDS_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"


def _authorization(ctx: PushContext, filters: list[Any]) -> list[Filter]:
    """The authorization filters among ``filters``, in order, configs served over ECDS read
    from the proxy's extension configs."""
    ecds = {c.name: c.typed_config for c in translate(ctx, proxy()).get(ECDS_TYPE, [])}
    out: list[Filter] = []
    for f in filters:
        typed = f.typed_config if f.HasField("typed_config") else ecds.get(f.name)
        if typed is not None and (
            "rbac" in typed.type_url.lower() or "ext_authz" in typed.type_url
        ):
            out.append(unpack(f.name, typed))
    return out


def http_chain(ctx: PushContext) -> list[Filter]:
    """The authorization filters of the HTTP chain, in order."""
    return _authorization(ctx, list(chains(ctx).http_filters()))


def tcp_chain(ctx: PushContext, chain: str = "inbound|5432||-mtls") -> list[Filter]:
    return _authorization(ctx, list(chains(ctx).chain(chain).filters))


def custom_only(chain: list[Filter]) -> list[Filter]:
    """The CUSTOM part: ext_authz and the RBAC filters whose policies are CUSTOM ones."""

    def is_custom(config: Any) -> bool:
        rbac = getattr(config, "shadow_rules", None), getattr(config, "rules", None)
        names = [n for r in rbac if r is not None for n in r.policies]
        return not hasattr(config, "shadow_rules") or any(
            n.startswith("istio-ext-authz-") for n in names
        )

    return [(name, config) for name, config in chain if is_custom(config)]


def clusters(ctx: PushContext) -> dict[str, cluster_pb2.Cluster]:
    return {c.name: c for c in translate(ctx, proxy())[CLUSTER_TYPE]}


def test_custom_comes_before_deny_and_allow() -> None:
    ctx = ctx_of(custom("ext", "grpc-local"), policy("deny", "action: DENY\nrules: [{to: [{operation: {paths: [/d]}}]}]"),
                 policy("allow", "rules: [{}]"))  # fmt: skip
    chain = http_chain(ctx)
    assert [name for name, _ in chain[:2]] == ["envoy.filters.http.rbac", HTTP_EXT_AUTHZ]
    deny_and_allow = [config for _, config in chain[2:]]
    assert {n for c in deny_and_allow for n in c.rules.policies} == {
        "ns[foo]-policy[deny]-rule[0]",
        "ns[foo]-policy[allow]-rule[0]",
    }
    assert not run(chain, get("/d"), JWT_KEY).allowed  # the DENY still holds after ext_authz
    first_rbac = chain[0][1]
    assert list(first_rbac.shadow_rules.policies) == [
        "istio-ext-authz-grpc-local-ns[foo]-policy[ext]-rule[0]"
    ]
    assert (
        not first_rbac.HasField("rules")
        and first_rbac.shadow_rules_stat_prefix == "istio_ext_authz_"
    )


def test_only_requests_a_custom_rule_selects_reach_the_authorizer() -> None:
    chain = custom_only(http_chain(ctx_of(custom("ext", "grpc-local"))))
    assert run(chain, get("/ext/a"), JWT_KEY).consulted
    assert not run(chain, get("/other"), JWT_KEY).consulted
    assert run(chain, get("/other"), JWT_KEY).allowed


def test_grpc_provider_on_an_ip_gets_a_static_h2_cluster() -> None:
    ctx = ctx_of(custom("ext", "grpc-local"))
    _, config = http_chain(ctx)[1]
    assert isinstance(config, ext_authz_pb2.ExtAuthz)
    assert config.grpc_service.envoy_grpc.cluster_name == "outbound|9191||127.0.0.1"
    assert config.grpc_service.timeout.seconds == 2 and config.failure_mode_allow
    cluster = clusters(ctx)["outbound|9191||127.0.0.1"]
    assert cluster.type == cluster_pb2.Cluster.STATIC
    assert (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        in cluster.typed_extension_protocol_options
    )
    # A gRPC provider serves TCP chains too.
    names = [name for name, _ in custom_only(tcp_chain(ctx))]
    assert names == ["envoy.filters.network.rbac", NETWORK_EXT_AUTHZ]
    assert isinstance(custom_only(tcp_chain(ctx))[1][1], net_ext_authz_pb2.ExtAuthz)


def test_http_provider_uses_the_registry_services_outbound_cluster() -> None:
    ctx = ctx_of(custom("ext", "http-mesh"))
    _, config = http_chain(ctx)[1]
    assert isinstance(config, ext_authz_pb2.ExtAuthz)
    uri = config.http_service.server_uri
    assert (uri.cluster, uri.uri, uri.timeout.seconds) == ("outbound|8000||authz.foo.svc.cluster.local",
                                                           "http://authz.foo.svc.cluster.local", 600)  # fmt: skip
    assert config.status_on_error.code == 503 and not config.failure_mode_allow
    assert [m.exact for m in config.allowed_headers.patterns] == ["x-ext-authz"]
    assert [
        m.prefix
        for m in config.http_service.authorization_response.allowed_upstream_headers.patterns
    ] == ["x-ext-authz-check-"]
    out = clusters(ctx)
    assert (
        out["outbound|8000||authz.foo.svc.cluster.local"].type == cluster_pb2.Cluster.EDS
    )  # the mesh's own
    # An HTTP provider cannot serve a TCP chain: nothing there (Istio).
    assert custom_only(tcp_chain(ctx)) == []


def test_a_host_outside_the_registry_gets_a_dns_cluster() -> None:
    cluster = clusters(ctx_of(custom("ext", "http-external")))["outbound|443||authz.example.com"]
    assert cluster.type == cluster_pb2.Cluster.STRICT_DNS
    assert not cluster.typed_extension_protocol_options  # HTTP/1.1 for an HTTP authorizer


def test_no_custom_policy_no_filter_and_no_cluster() -> None:
    ctx = ctx_of(policy("allow", "rules: [{}]"))
    assert custom_only(http_chain(ctx)) == []
    assert "outbound|9191||127.0.0.1" not in clusters(ctx)


@pytest.mark.parametrize("policies", [
    pytest.param([custom("ext", "nobody")], id="unknown provider"),
    pytest.param([custom("ext", "tracer")], id="not an ext_authz provider"),
    pytest.param([custom("a", "grpc-local"), custom("b", "http-mesh", "[{to: [{operation: {paths: [/b]}}]}]")],
                 id="two providers on one workload"),
])  # fmt: skip
def test_a_bad_provider_denies_what_the_custom_rules_select(policies: list[str]) -> None:
    ctx = ctx_of(*policies)
    chain = custom_only(http_chain(ctx))
    assert [name for name, _ in chain] == ["envoy.filters.http.rbac"]  # no ext_authz
    rbac = chain[0][1]
    assert all(name.endswith("-deny-due-to-bad-CUSTOM-action") for name in rbac.rules.policies)
    assert not run(chain, get("/ext/x"), JWT_KEY).allowed
    assert run(chain, get("/open"), JWT_KEY).allowed
    custom_part = workload_custom(ctx, proxy(), tcp=False)
    assert custom_part is not None and custom_part.error
    # On TCP the DENY rules hold too (without their HTTP fields they match every connection).
    assert not run(custom_only(tcp_chain(ctx)), Request(principal=None, port=5432), JWT_KEY).allowed


def test_dry_run_custom_policies_neither_call_the_authorizer_nor_block() -> None:
    ctx = ctx_of(custom("ext", "grpc-local", annotations='{"istio.io/dry-run": "true"}'))
    assert custom_only(http_chain(ctx)) == []


def test_an_empty_rule_sends_every_request_to_the_authorizer() -> None:
    chain = custom_only(http_chain(ctx_of(custom("ext", "grpc-local", "[{}]"))))
    assert run(chain, get("/anything"), JWT_KEY).consulted
    assert run(chain, get("/", principal=None), JWT_KEY).consulted


def test_computed_once_per_namespace_and_labels() -> None:
    ctx = ctx_of(custom("ext", "grpc-local"))
    first = workload_custom(ctx, proxy(), tcp=False)
    assert (
        workload_custom(
            ctx, proxy(labels={"app": "httpbin", "version": "v1"}, sa="other"), tcp=False
        )
        is first
    )


@pytest.mark.parametrize(("provider", "path"), [
    ({"envoyExtAuthzHttp": {"service": "a.b", "port": 0}}, "extensionProviders[0].envoyExtAuthzHttp.port"),
    ({"envoyExtAuthzGrpc": {"service": "a.b", "port": "x"}}, "extensionProviders[0].envoyExtAuthzGrpc.port"),
    ({"envoyExtAuthzGrpc": {"port": 9000}}, "extensionProviders[0].envoyExtAuthzGrpc.service"),
    ({"envoyExtAuthzHttp": {"service": "bad_host!", "port": 80}}, "extensionProviders[0].envoyExtAuthzHttp.service"),
    ({"envoyExtAuthzHttp": {"service": "a.b", "port": 80, "statusOnError": "999"}},
     "extensionProviders[0].envoyExtAuthzHttp.statusOnError"),
    ({"envoyExtAuthzHttp": {"service": "a.b", "port": 80, "pathPrefix": "check"}},
     "extensionProviders[0].envoyExtAuthzHttp.pathPrefix"),
    ({"envoyExtAuthzHttp": {"service": "a.b", "port": 80, "includeRequestHeadersInCheck": ["*"]}},
     "extensionProviders[0].envoyExtAuthzHttp.includeRequestHeadersInCheck[0]"),
    ({"envoyExtAuthzHttp": {"service": "a.b", "port": 80, "timeout": "soon"}},
     "extensionProviders[0].envoyExtAuthzHttp.timeout"),
])  # fmt: skip
def test_the_mesh_config_names_the_bad_field(provider: dict[str, object], path: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_document({"extensionProviders": [{"name": "p", **provider}]})
    assert path in str(raised.value)


def test_istios_task_providers_are_accepted() -> None:
    """The external authorization task's mesh config, ports as strings included."""
    mesh = parse_document({"extensionProviders": [
        {"name": "sample-ext-authz-grpc", "envoyExtAuthzGrpc": {"service": "ext-authz.foo.svc.cluster.local", "port": "9000"}},
        {"name": "sample-ext-authz-http", "envoyExtAuthzHttp": {
            "service": "ext-authz.foo.svc.cluster.local", "port": "8000", "includeRequestHeadersInCheck": ["x-ext-authz"]}},
    ]})  # fmt: skip
    assert [p.kind for p in mesh.extension_providers] == [
        "envoy_ext_authz_grpc",
        "envoy_ext_authz_http",
    ]
