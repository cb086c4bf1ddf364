"""Policies selecting a gateway's pods apply on its listeners, as Istio's do: the policy
filters answer for gateway chains as for a sidecar's inbound ones, never for outbound."""

from __future__ import annotations

from envoy.extensions.filters.http.rbac.v3 import rbac_pb2

from controlplane.translate import MeshConfig, Proxy, push_context
from controlplane.translate.filters import FilterSite, http_filter_chain
from controlplane.translate.filters.base import GATEWAY, OUTBOUND, ExtensionConfigs
from tests.translate.support import load_documents, snapshot_of

POLICIES = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress-allow-get, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  rules: [{to: [{operation: {methods: [GET]}}]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ingress-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules: [{issuer: https://issuer.example, jwks: '{"keys": []}'}]
"""


def _chain(direction: str) -> tuple[list[str], ExtensionConfigs]:
    ctx = push_context(snapshot_of(load_documents(POLICIES)), MeshConfig())
    gateway = Proxy.make("router", "istio-system", labels={"istio": "ingressgateway"})
    extensions = ExtensionConfigs()
    site = FilterSite(ctx, gateway, direction, 443, http=True, extensions=extensions)
    return [f.name for f in http_filter_chain(site)], extensions


def test_a_policy_selecting_the_gateway_applies_on_its_listeners() -> None:
    names, extensions = _chain(GATEWAY)
    policy_filters = [n for n in names if n.startswith("istio-system.")]
    assert policy_filters[:1] == ["istio-system.jwt-authn"]  # authentication before authorization
    assert "istio-system.rbac-allow" in policy_filters and names[-1] == "envoy.filters.http.router"
    allow = rbac_pb2.RBAC()
    extensions.resources()["istio-system.rbac-allow"].typed_config.Unpack(allow)
    assert list(allow.rules.policies) == ["ns[istio-system]-policy[ingress-allow-get]-rule[0]"]


def test_policies_never_reach_outbound_chains() -> None:
    names, extensions = _chain(OUTBOUND)
    assert not any("rbac" in n or "jwt" in n for n in names) and not extensions.resources()
