"""AuthorizationPolicy CUSTOM -> Envoy ext_authz, as Istio's ``builder/extauthz.go``.

A workload's CUSTOM policies become, on each inbound chain, before DENY and ALLOW:

- an RBAC filter whose *shadow* rules are the CUSTOM rules (DENY semantics, so HTTP-only
  fields on a TCP chain make a rule match more, never less), named
  ``istio-ext-authz-<provider>-ns[NS]-policy[NAME]-rule[N]``, with stat prefix
  ``istio_ext_authz_``. It never blocks; when a rule matches, Envoy writes the rule's name to
  dynamic metadata ``istio_ext_authz_shadow_effective_policy_id`` of the RBAC filter;
- the ext_authz filter of the provider, enabled only when that metadata starts with
  ``istio-ext-authz-<provider>`` (``filter_enabled_metadata``): a request no CUSTOM rule
  selects never reaches the authorizer.

The provider comes from the mesh config's ``extensionProviders`` (``envoyExtAuthzHttp``:
HTTP chains only; ``envoyExtAuthzGrpc``: HTTP and TCP chains). Its ``service`` is looked up
as Istio's LookupCluster does (``<namespace>/<hostname>``, or a hostname found in one
namespace) and the checks go to that service's outbound cluster
``outbound|<port>||<hostname>``. Where the proxy has no such cluster (a service outside its
Sidecar scope, or a host not in the registry at all: a plain host name or an IP, e.g. an
authorizer on loopback), a plain cluster of the same name is added (``ext_authz_clusters``);
Istio instead refuses a service it cannot find, as a bad provider.

When a provider is unknown or invalid, or a workload's CUSTOM policies name more than one
provider (Istio's default: one provider per workload), the requests the CUSTOM rules select
are refused: their rules go to an enforced DENY RBAC filter, each name suffixed with
``-deny-due-to-bad-CUSTOM-action``. A dry-run (``istio.io/dry-run``) CUSTOM policy is left
out: it neither calls the authorizer nor blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2, http_uri_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.ext_authz.v3 import ext_authz_pb2 as net_ext_authz_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.type.matcher.v3 import metadata_pb2, string_pb2, value_pb2

from controlplane.model.base import FieldError
from controlplane.model.mesh_config import (
    EnvoyExtAuthzGrpcProvider,
    EnvoyExtAuthzHttpProvider,
    ExtAuthzRequestBody,
    ExtensionProvider,
    provider_port,
    validate_ext_authz,
)
from controlplane.model.security import AuthorizationPolicy
from controlplane.translate import names
from controlplane.translate.authz.builder import CUSTOM, TCP_STAT_PREFIX, is_dry_run, policy_name
from controlplane.translate.authz.rules import match_never, rule_policy
from controlplane.translate.authz.trust_domain import TrustDomainBundle
from controlplane.translate.authz.workload import (
    applicable_policies,
    trust_domain_bundle,
    workload_key,
)
from controlplane.translate.pb import duration
from controlplane.translate.providers import ProviderTarget, lookup_service, provider_cluster

if TYPE_CHECKING:
    from controlplane.translate.index.context import PushContext
    from controlplane.translate.proxy import Proxy

EXT_AUTHZ_PREFIX = "istio-ext-authz"
SHADOW_STAT_PREFIX = "istio_ext_authz_"
SHADOW_EFFECTIVE_POLICY_ID = SHADOW_STAT_PREFIX + "shadow_effective_policy_id"
BAD_CUSTOM_SUFFIX = "-deny-due-to-bad-CUSTOM-action"
DEFAULT_TIMEOUT = timedelta(seconds=600)  # Istio's, when the provider sets none
HTTP_RBAC_FILTER = "envoy.filters.http.rbac"
NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

RbacConfig: TypeAlias = http_rbac_pb2.RBAC | network_rbac_pb2.RBAC
ExtAuthzConfig: TypeAlias = ext_authz_pb2.ExtAuthz | net_ext_authz_pb2.ExtAuthz


# --- providers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedProvider:
    """An ext_authz provider ready for Envoy (``http``; ``tcp`` for gRPC ones), or the reason
    it cannot be used (``error``: its CUSTOM rules then deny)."""

    name: str
    http: ext_authz_pb2.ExtAuthz | None = None
    tcp: net_ext_authz_pb2.ExtAuthz | None = None
    service: ProviderTarget | None = None
    error: str = ""


# (hostname in the registry, or None) for a provider's ``service``.
Lookup = Callable[[str], "str | None"]


def registry_lookup(ctx: PushContext) -> Lookup:
    """Istio's LookupCluster on the registry (translate/providers.py)."""
    return lambda service: lookup_service(ctx.service_by_host, ctx.mesh.domain_suffix, service)


def _headers(patterns: Sequence[str]) -> string_pb2.ListStringMatcher | None:
    """Istio's generateHeaders: ``prefix*``, ``*suffix`` or exact, ignoring case."""
    if not patterns:
        return None
    out = string_pb2.ListStringMatcher()
    for header in patterns:
        m = out.patterns.add(ignore_case=True)
        if header.startswith("*"):
            m.suffix = header[1:]
        elif header.endswith("*"):
            m.prefix = header[:-1]
        else:
            m.exact = header
    return out


def _filter_enabled(rbac_filter: str, provider: str) -> metadata_pb2.MetadataMatcher:
    """Enable the ext_authz filter only where a CUSTOM rule of ``provider`` matched."""
    return metadata_pb2.MetadataMatcher(
        filter=rbac_filter,
        path=[metadata_pb2.MetadataMatcher.PathSegment(key=SHADOW_EFFECTIVE_POLICY_ID)],
        value=value_pb2.ValueMatcher(
            string_match=string_pb2.StringMatcher(prefix=f"{EXT_AUTHZ_PREFIX}-{provider}")
        ),
    )


def _body(body: ExtAuthzRequestBody | None) -> ext_authz_pb2.BufferSettings | None:
    if body is None:
        return None
    return ext_authz_pb2.BufferSettings(
        max_request_bytes=body.max_request_bytes, allow_partial_message=body.allow_partial_message,
        pack_as_bytes=body.pack_as_bytes,
    )  # fmt: skip


def _common(
    config: ext_authz_pb2.ExtAuthz,
    spec: EnvoyExtAuthzHttpProvider | EnvoyExtAuthzGrpcProvider,
    provider: str,
) -> None:
    if spec.status_on_error:
        config.status_on_error.code = int(spec.status_on_error)  # type: ignore[assignment]
    config.failure_mode_allow = spec.fail_open
    config.transport_api_version = config_source_pb2.V3
    config.filter_enabled_metadata.CopyFrom(_filter_enabled(HTTP_RBAC_FILTER, provider))
    if (body := _body(spec.include_request_body_in_check)) is not None:
        config.with_request_body.CopyFrom(body)


def _http_config(
    name: str, spec: EnvoyExtAuthzHttpProvider, host: str, cluster: str
) -> ext_authz_pb2.ExtAuthz:
    service = ext_authz_pb2.HttpService(
        path_prefix=spec.path_prefix,
        # The URI is required by the API, not used: the cluster is where checks go.
        server_uri=http_uri_pb2.HttpUri(uri=f"http://{host}", cluster=cluster,
                                        timeout=duration(spec.timeout or DEFAULT_TIMEOUT)),
    )  # fmt: skip
    additional = [base_pb2.HeaderValue(key=k, value=spec.include_additional_headers_in_check[k])
                  for k in sorted(spec.include_additional_headers_in_check)]  # fmt: skip
    if additional:
        service.authorization_request.headers_to_add.extend(additional)
    response = {
        "allowed_upstream_headers": _headers(spec.headers_to_upstream_on_allow),
        "allowed_client_headers": _headers(spec.headers_to_downstream_on_deny),
        "allowed_client_headers_on_success": _headers(spec.headers_to_downstream_on_allow),
    }
    for field_name, matcher in response.items():
        if matcher is not None:
            getattr(service.authorization_response, field_name).CopyFrom(matcher)
    config = ext_authz_pb2.ExtAuthz(http_service=service)
    _common(config, spec, name)
    # includeHeadersInCheck is deprecated: used only when includeRequestHeadersInCheck is unset.
    allowed = _headers(spec.include_request_headers_in_check)
    allowed = allowed or _headers(spec.include_headers_in_check)
    if allowed is not None:
        config.allowed_headers.CopyFrom(allowed)
    return config


def _grpc_configs(
    name: str, spec: EnvoyExtAuthzGrpcProvider, host: str, cluster: str
) -> tuple[ext_authz_pb2.ExtAuthz, net_ext_authz_pb2.ExtAuthz]:
    grpc = grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster, authority=host),
        timeout=duration(spec.timeout or DEFAULT_TIMEOUT),
    )
    http = ext_authz_pb2.ExtAuthz(grpc_service=grpc)
    _common(http, spec, name)
    tcp = net_ext_authz_pb2.ExtAuthz(
        stat_prefix=TCP_STAT_PREFIX, grpc_service=grpc, failure_mode_allow=spec.fail_open,
        transport_api_version=config_source_pb2.V3,
        filter_enabled_metadata=_filter_enabled(NETWORK_RBAC_FILTER, name),
    )  # fmt: skip
    return http, tcp


def resolve_provider(provider: ExtensionProvider, lookup: Lookup) -> ResolvedProvider | None:
    """The ext_authz of one mesh config provider; None when it is not an ext_authz provider."""
    spec = provider.envoy_ext_authz_http or provider.envoy_ext_authz_grpc
    if spec is None:
        return None
    errors: list[FieldError] = []
    # The mesh config's own validation, again, as Istio's builder checks its providers.
    validate_ext_authz(spec, "", errors)
    if errors:
        return ResolvedProvider(
            provider.name, error="; ".join(f"{e.path.lstrip('.')}: {e.message}" for e in errors)
        )
    port = provider_port(spec.port)
    assert port is not None
    found = lookup(spec.service)
    host = found or spec.service.rpartition("/")[2]
    cluster = names.outbound_cluster(host, port)
    grpc = isinstance(spec, EnvoyExtAuthzGrpcProvider)
    service = ProviderTarget(cluster, host, port, found is not None, grpc)
    if isinstance(spec, EnvoyExtAuthzGrpcProvider):
        http, tcp = _grpc_configs(provider.name, spec, host, cluster)
        return ResolvedProvider(provider.name, http, tcp, service)
    return ResolvedProvider(
        provider.name, _http_config(provider.name, spec, host, cluster), None, service
    )


def resolve_providers(
    providers: Sequence[ExtensionProvider], lookup: Lookup
) -> dict[str, ResolvedProvider]:
    """Every ext_authz provider by name (a duplicate name is an error of that name)."""
    out: dict[str, ResolvedProvider] = {}
    for provider in providers:
        resolved = resolve_provider(provider, lookup)
        if resolved is None:
            continue
        if provider.name in out:
            resolved = ResolvedProvider(
                provider.name, error=f"duplicate extension provider name {provider.name!r}"
            )
        out[provider.name] = resolved
    return out


def mesh_providers(ctx: PushContext) -> Mapping[str, ResolvedProvider]:
    """The mesh config's ext_authz providers, resolved once per snapshot."""
    if ctx.memo.ext_authz_providers is None:
        # The mesh config's extensionProviders (all kinds) are kept with the telemetry defaults.
        ctx.memo.ext_authz_providers = resolve_providers(
            ctx.mesh.telemetry.extension_providers, registry_lookup(ctx)
        )
    return ctx.memo.ext_authz_providers


# --- a workload's CUSTOM policies ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomAuthz:
    """What a workload's CUSTOM policies put on one kind of chain: the RBAC filter (shadow
    rules marking requests for ``ext_authz``, or enforced DENY rules when the provider is bad)
    and the ext_authz filter (None when bad). ``error`` says why the rules deny."""

    rbac: RbacConfig
    ext_authz: ExtAuthzConfig | None = None
    service: ProviderTarget | None = None
    provider: str = ""
    error: str = ""


def custom_rules(
    policies: Sequence[AuthorizationPolicy], *, tcp: bool, bundle: TrustDomainBundle
) -> dict[str, dict[str, rbac_pb2.Policy]]:
    """The enforced CUSTOM policies' rules by provider, named as Istio names them."""
    out: dict[str, dict[str, rbac_pb2.Policy]] = {}
    for policy in policies:
        if policy.spec.action != CUSTOM or is_dry_run(policy):
            continue
        provider = policy.spec.provider.name if policy.spec.provider is not None else ""
        rules = out.setdefault(provider, {})
        prefix = f"{EXT_AUTHZ_PREFIX}-{provider}-" if provider else f"{EXT_AUTHZ_PREFIX}-"
        ns, name = policy.meta.namespace, policy.meta.name
        if not policy.spec.rules:
            rules[prefix + policy_name(ns, name, 0)] = match_never()
        for index, rule in enumerate(policy.spec.rules):
            # DENY semantics: what a TCP chain cannot check is left out (the rule matches more).
            built = rule_policy(rule, ns, tcp=tcp, strict=False, bundle=bundle)
            if built is not None:
                rules[prefix + policy_name(ns, name, index)] = built
    return out


def _rbac(
    tcp: bool, *, rules: rbac_pb2.RBAC | None = None, shadow: rbac_pb2.RBAC | None = None
) -> RbacConfig:
    out: RbacConfig = (
        network_rbac_pb2.RBAC(stat_prefix=TCP_STAT_PREFIX) if tcp else http_rbac_pb2.RBAC()
    )
    if rules is not None:
        out.rules.CopyFrom(rules)
    if shadow is not None:
        out.shadow_rules.CopyFrom(shadow)
        out.shadow_rules_stat_prefix = SHADOW_STAT_PREFIX
    return out


def build_custom(
    policies: Sequence[AuthorizationPolicy],
    providers: Mapping[str, ResolvedProvider],
    *,
    tcp: bool,
    bundle: TrustDomainBundle,
) -> CustomAuthz | None:
    """What the CUSTOM policies among ``policies`` put on an HTTP (or ``tcp``) chain; None
    when there are none, or when their provider cannot serve a TCP chain (HTTP providers)."""
    by_provider = custom_rules(policies, tcp=tcp, bundle=bundle)
    if not by_provider:
        return None
    chosen = sorted(by_provider)
    resolved = providers.get(chosen[0])
    if len(chosen) > 1:
        error = f"only 1 provider can be used per workload, found multiple providers: {chosen}"
    elif resolved is None:
        error = f"available providers are {sorted(providers)} but found {chosen[0]!r}"
    else:
        error = resolved.error and f"found errors in provider {chosen[0]}: {resolved.error}"
    if error:
        deny = rbac_pb2.RBAC(action=rbac_pb2.RBAC.DENY)
        for rules in by_provider.values():
            for name, rule in rules.items():
                deny.policies[name + BAD_CUSTOM_SUFFIX].CopyFrom(rule)
        return CustomAuthz(_rbac(tcp, rules=deny), provider=",".join(chosen), error=error)
    assert resolved is not None
    ext_authz = resolved.tcp if tcp else resolved.http
    if ext_authz is None:  # an HTTP provider on a TCP chain: nothing to enforce there (Istio)
        return None
    shadow = rbac_pb2.RBAC(action=rbac_pb2.RBAC.DENY, policies=by_provider[chosen[0]])
    return CustomAuthz(_rbac(tcp, shadow=shadow), ext_authz, resolved.service, resolved.name)


def workload_custom(ctx: PushContext, proxy: Proxy, *, tcp: bool) -> CustomAuthz | None:
    """The CUSTOM part of ``proxy``'s inbound chains (HTTP, or ``tcp``), shared by proxies of
    the same namespace (and labels, where a policy selects by them) within one snapshot."""
    if not ctx.policies.authorization_policies:
        return None
    key = workload_key(ctx, proxy, tcp=tcp)
    if key not in ctx.memo.ext_authz:
        applicable = applicable_policies(ctx, proxy)
        ctx.memo.ext_authz[key] = (
            build_custom(applicable, mesh_providers(ctx), tcp=tcp, bundle=trust_domain_bundle(ctx))
            if any(p.spec.action == CUSTOM for p in applicable)
            else None
        )
    return ctx.memo.ext_authz[key]


# --- clusters --------------------------------------------------------------------------------


def ext_authz_clusters(
    ctx: PushContext, proxy: Proxy, existing: Mapping[str, cluster_pb2.Cluster]
) -> list[cluster_pb2.Cluster]:
    """Clusters the proxy's ext_authz filters send to that it does not have yet: an authorizer
    outside the registry, or a registry service outside the proxy's Sidecar scope."""
    out: list[cluster_pb2.Cluster] = []
    for tcp in (False, True):
        custom = workload_custom(ctx, proxy, tcp=tcp)
        service = custom.service if custom is not None else None
        if (
            service is None
            or service.cluster in existing
            or any(c.name == service.cluster for c in out)
        ):
            continue
        out.append(provider_cluster(ctx, service))
    return out
