"""RequestAuthentication -> Envoy ``jwt_authn``, as istiod's ``convertToEnvoyJwtConfig``.

Every RequestAuthentication that applies to the workload (root namespace -> namespace ->
workload, root-namespace selectors mesh-wide; see ``index.policies``) contributes its
``jwtRules``; the rules, sorted by issuer, become providers ``origins-0``, ``origins-1``, ...

Semantics (Istio's):
- a request with a token that no provider accepts gets 401;
- a request without a token passes (``allow_missing``): requiring one is an
  AuthorizationPolicy's job (``requestPrincipals``, read by RBAC);
- with several providers the requirement is ``any(P1, ..., Pn, all(any(P1, missing), ...))``:
  each token present must be valid, and the outer ``any`` lets providers that share a token
  location accept it.

Keys are always inline (``local_jwks``), as istiod's default ``PILOT_JWT_ENABLE_REMOTE_JWKS``
(``istiod``) does: an inline ``jwks``, or the document the control plane fetched for the
``jwksUri`` (or the issuer's OpenID discovery), read from the index. Until a fetch has
succeeded, a key nobody holds (``FAKE_JWKS``) stands in, so every token fails rather than
passing unchecked; after one success a failed refresh keeps the last good keys.

Contract with RBAC: each provider writes the verified payload to dynamic metadata
``envoy.filters.http.jwt_authn`` under ``jwt_payload`` (``PAYLOAD_IN_METADATA``), so
``request.auth.*`` reads ``jwt_payload.iss``, ``.sub``, ``.aud``, ``.azp`` and claims.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.model.jwks import jwks_target
from controlplane.model.security import JWTRule, RequestAuthentication
from controlplane.translate.filters.base import (
    GATEWAY,
    JWT_AUTHN,
    POLICY_DIRECTIONS,
    FilterSite,
    HttpFilter,
)
from controlplane.translate.index.jwks import JwksIndex

if TYPE_CHECKING:
    from controlplane.translate.index.context import PushContext

JWT_AUTHN_FILTER = "envoy.filters.http.jwt_authn"
# Where every provider puts the verified payload (dynamic metadata of JWT_AUTHN_FILTER).
PAYLOAD_IN_METADATA = "jwt_payload"
# Claims Istio always normalizes from a space-delimited string to a list.
DEFAULT_SPACE_DELIMITED_CLAIMS = ("permission", "scope")

# A JWKS whose private key was thrown away when it was made: no token verifies against it.
# Inlined for keys the control plane has not fetched yet (Istio's FakeJwks).
FAKE_JWKS = json.dumps(
    {
        "keys": [
            {
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "kid": "controlplane-unfetched",
                "e": "AQAB",
                "n": (
                    "ryp1-DCt5NpQn9DqJ0fQpnOSryV6QICmgS_WiaHy3s2SOoaec9_EGTgBzCjwK6Dszcxswu_2K01h-0sHQ"
                    "pyFHMw31BAp_tLV1ZN9FPBt9s2RJiXz2lHtuJwtzkmwlCRIuc1JAJtW5xp1GvnaX3C5riQzb21adqvgv9I"
                    "2xSMyUxa-e9OxN8HWjsrfXqcIuYVPWrzC3x0g4wquBFFQm9U-328L0-FobgZqMwOJCXUmv-63VZaq2ByHM"
                    "JWJ2lVSv4Q1lVKRnYn2LS_zT3xD8JssG43IHZvP5r5B7YHTMO8o-5tCxVi6BcAsxqppEQCVT5lRN3hQIaM"
                    "oN_VyV1CfKlBHGw"
                ),
            }
        ]
    },
    sort_keys=True,
)


def applicable_request_authentications(
    ctx: PushContext, namespace: str, labels: Mapping[str, str]
) -> tuple[RequestAuthentication, ...]:
    """Every RequestAuthentication that applies to a workload, least specific first."""
    policies = ctx.policies.request_authentications
    return policies.applicable(ctx.mesh.root_namespace, namespace, labels).all()


def jwt_rules(policies: tuple[RequestAuthentication, ...]) -> tuple[JWTRule, ...]:
    """The rules of ``policies``, sorted (stably) by issuer, as istiod orders its providers."""
    return tuple(sorted((r for p in policies for r in p.spec.jwt_rules), key=lambda r: r.issuer))


def space_delimited_claims(rule: JWTRule) -> list[str]:
    return sorted(set(rule.space_delimited_claims) | set(DEFAULT_SPACE_DELIMITED_CLAIMS))


def local_jwks(rule: JWTRule, jwks: JwksIndex) -> str:
    """The keys to inline for ``rule``: its own ``jwks``, else the last good fetched document,
    else ``FAKE_JWKS``."""
    target = jwks_target(rule)
    if target is None:
        return rule.jwks
    fetched = jwks.get(target)
    return fetched if fetched is not None else FAKE_JWKS


def jwt_provider(rule: JWTRule, jwks: JwksIndex, *, clear_route_cache: bool = False) -> jwt_pb2.JwtProvider:
    provider = jwt_pb2.JwtProvider(
        issuer=rule.issuer,
        audiences=list(rule.audiences),
        forward=rule.forward_original_token,
        forward_payload_header=rule.output_payload_to_header,
        payload_in_metadata=PAYLOAD_IN_METADATA,
        clear_route_cache=clear_route_cache,
    )
    provider.normalize_payload_in_metadata.space_delimited_claims.extend(space_delimited_claims(rule))
    for claim in rule.output_claim_to_headers:
        provider.claim_to_headers.add(header_name=claim.header, claim_name=claim.claim)
    # No location given: Envoy's defaults, which are Istio's (Authorization: Bearer, then the
    # access_token query parameter).
    for header in rule.from_headers:
        provider.from_headers.add(name=header.name, value_prefix=header.prefix)
    provider.from_params.extend(rule.from_params)
    provider.from_cookies.extend(rule.from_cookies)
    provider.local_jwks.inline_string = local_jwks(rule, jwks)
    return provider


def _provider_name(index: int) -> str:
    return f"origins-{index}"


def _named(name: str) -> jwt_pb2.JwtRequirement:
    return jwt_pb2.JwtRequirement(provider_name=name)


def jwt_authn_config(
    rules: tuple[JWTRule, ...], jwks: JwksIndex, *, clear_route_cache: bool = False
) -> jwt_pb2.JwtAuthentication | None:
    """Istio's filter config for ``rules`` (already in provider order); None without rules."""
    if not rules:
        return None
    config = jwt_pb2.JwtAuthentication(bypass_cors_preflight=True)
    optional: list[jwt_pb2.JwtRequirement] = []  # per provider: the provider, or no token at all
    for index, rule in enumerate(rules):
        name = _provider_name(index)
        config.providers[name].CopyFrom(jwt_provider(rule, jwks, clear_route_cache=clear_route_cache))
        either = jwt_pb2.JwtRequirement()
        either.requires_any.requirements.append(_named(name))
        either.requires_any.requirements.add().allow_missing.SetInParent()
        optional.append(either)
    rule_out = config.rules.add(match=rc.RouteMatch(prefix="/"))
    if len(optional) == 1:
        rule_out.requires.CopyFrom(optional[0])
        return config
    outer = rule_out.requires.requires_any.requirements
    outer.extend(_named(_provider_name(i)) for i in range(len(rules)))
    outer.add().requires_all.requirements.extend(optional)
    return config


def workload_jwt_config(
    ctx: PushContext, namespace: str, labels: Mapping[str, str], *, clear_route_cache: bool = False
) -> jwt_pb2.JwtAuthentication | None:
    """The jwt_authn config of a workload (None when no rule applies), computed once per
    snapshot for each namespace and the labels that matter there (none when no policy of the
    namespace selects by labels)."""
    requests = ctx.policies.request_authentications
    if not requests:
        return None
    root = ctx.mesh.root_namespace
    labels_key = tuple(sorted(labels.items())) if requests.selects_by_labels(root, namespace) else None
    key = (namespace, labels_key, clear_route_cache)
    memo = ctx.memo.jwt_authn
    if key not in memo:
        rules = jwt_rules(applicable_request_authentications(ctx, namespace, labels))
        memo[key] = jwt_authn_config(rules, ctx.jwks, clear_route_cache=clear_route_cache)
    return memo[key]


class JwtAuthn(HttpFilter):
    """Served over ECDS as ``<namespace>.jwt-authn``: once the mesh has a RequestAuthentication,
    every inbound HTTP chain (and gateway) carries the filter, with no provider where no rule
    applies (every request passes), so adding, changing or removing a RequestAuthentication,
    or a key rotation, changes that config and never the listener."""

    name = JWT_AUTHN_FILTER
    position = JWT_AUTHN

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        if site.direction not in POLICY_DIRECTIONS:
            return None
        if not site.ctx.policies.request_authentications:
            return None
        proxy = site.proxy
        # Istio clears the route cache after authentication on gateways only (routes may
        # match on claims there).
        config = workload_jwt_config(
            site.ctx, proxy.namespace, proxy.label_map, clear_route_cache=site.direction == GATEWAY
        )
        if config is None:  # no rule for this workload: nothing to check
            config = jwt_pb2.JwtAuthentication()
        return self.discovered(site, "jwt-authn", config)


FILTER = JwtAuthn()
