"""HTTPRoute and GRPCRoute rules -> VirtualService HTTP routes; backendRefs -> destinations
(Istio's convertHTTPRoute, convertGRPCRoute, buildDestination and the filter helpers).

An error is "soft" (the backend is dropped or left unresolvable, the rest still routes; Istio's
isInvalidBackend: RefNotPermitted, BackendNotFound, InvalidKind) or "hard" (the route gets no
VirtualService at all). Either way it ends up in the route's ResolvedRefs condition.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from controlplane.model.common import Percent, PortSelector, StringMatch
from controlplane.model.frozen import FrozenDict
from controlplane.model.gateway_api import (
    AnyRoute,
    BackendObjectReference,
    BackendRef,
    GRPCRoute,
    GRPCRouteRule,
    HTTPBackendRef,
    HTTPCORSFilter,
    HTTPHeaderFilter,
    HTTPRequestRedirectFilter,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    HTTPURLRewriteFilter,
)
from controlplane.model.virtual_service import (
    PREFIX_REDIRECT,
    CorsPolicy,
    Destination,
    HeaderOperations,
    Headers,
    HTTPDirectResponse,
    HTTPMatchRequest,
    HTTPMirrorPolicy,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
    HTTPRouteDestination,
    RegexRewrite,
)
from controlplane.model.virtual_service import HTTPRoute as IstioHTTPRoute
from controlplane.translate.gateway_api.inputs import ConversionInputs
from controlplane.translate.gateway_api.references import ReferenceGrants
from controlplane.translate.gateway_api.status import ConfigError

SOFT_REASONS = frozenset({"RefNotPermitted", "BackendNotFound", "InvalidKind"})
HOSTNAME_GROUP = "networking.istio.io"
MCS_GROUP = "multicluster.x-k8s.io"
DEFAULT_RETRY_ON = ("connect-failure", "refused-stream", "unavailable", "cancelled")


@dataclass(frozen=True, slots=True)
class RouteContext:
    inputs: ConversionInputs
    grants: ReferenceGrants

    @property
    def domain_suffix(self) -> str:
        return self.inputs.domain_suffix


def join_errors(a: ConfigError | None, b: ConfigError | None) -> ConfigError | None:
    if a is None or b is None:
        return a or b
    return ConfigError(a.reason, f"{a.message}; {b.message}")


def build_destination(
    ctx: RouteContext, to: BackendObjectReference, namespace: str, enforce_grants: bool, route_kind: str
) -> tuple[Destination | None, ConfigError | None]:
    """The Istio destination of a backendRef; (None, hard error) when it cannot be expressed."""
    target_ns = to.namespace or namespace
    crossing = enforce_grants and to.namespace is not None and to.namespace != namespace
    if crossing and not ctx.grants.allows(route_kind, namespace, "Service", target_ns, to.name):
        return Destination(), ConfigError(
            "RefNotPermitted",
            f"backendRef {to.name}/{to.namespace} not accessible to a {route_kind} in namespace "
            f'"{namespace}" (missing a ReferenceGrant?)',
        )
    group = to.group if to.group is not None else ""
    kind = to.kind if to.kind is not None else "Service"
    soft: ConfigError | None = None
    if (group, kind) in (("", "Service"), ("core", "Service"), (MCS_GROUP, "ServiceImport")):
        if "." in to.name:
            return None, ConfigError(
                "InvalidDestination", "service name invalid; the name of the Service must be used, not the hostname."
            )
        hostname = f"{to.name}.{target_ns}.svc.{ctx.domain_suffix}"
        if (target_ns, to.name) not in ctx.inputs.services:
            soft = ConfigError("BackendNotFound", f"backend({hostname}) not found")
    elif (group, kind) == (HOSTNAME_GROUP, "Hostname"):
        if to.namespace is not None:
            return None, ConfigError("InvalidDestination", "namespace may not be set with Hostname type")
        hostname = to.name
        if ctx.inputs.lookup_host(hostname, target_ns) is None:
            soft = ConfigError("BackendNotFound", f"backend({hostname}) not found")
    else:
        return Destination(), ConfigError(
            "InvalidKind", f'referencing unsupported backendRef: group "{group}" kind "{kind}"'
        )
    if to.port is None:
        return None, ConfigError("InvalidDestination", "port is required in backendRef")
    return Destination(host=hostname, port=PortSelector(to.port)), soft


def _header_operations(f: HTTPHeaderFilter | None) -> HeaderOperations | None:
    if f is None:
        return None

    def as_map(headers: tuple) -> FrozenDict[str, str]:  # type: ignore[type-arg]
        out: dict[str, str] = {}
        for h in headers:  # "Subsequent entries with an equivalent header name MUST be ignored"
            out.setdefault(h.name.lower(), h.value)
        return FrozenDict(out)

    return HeaderOperations(set=as_map(f.set), add=as_map(f.add), remove=tuple(f.remove))


def _with_headers(current: Headers | None, request: HeaderOperations | None = None,
                  response: HeaderOperations | None = None) -> Headers:
    current = current or Headers()
    return Headers(request=request or current.request, response=response or current.response)


def _redirect(f: HTTPRequestRedirectFilter) -> HTTPRedirect:
    uri = ""
    if f.path is not None:
        if f.path.type == "ReplaceFullPath":
            uri = f.path.replace_full_path or ""
        elif f.path.type == "ReplacePrefixMatch":
            uri = PREFIX_REDIRECT + (f.path.replace_prefix_match or "")
    if f.port is not None:
        port, derive = f.port, None
    else:  # "When empty, port (if specified) of the request is used", unless the scheme changes
        port, derive = 0, "FROM_PROTOCOL_DEFAULT" if f.scheme is not None else "FROM_REQUEST_PORT"
    return HTTPRedirect(
        uri=uri, authority=f.hostname or "", port=port, derive_port=derive,  # type: ignore[arg-type]
        scheme=f.scheme or "", redirect_code=f.status_code or 0,
    )


def _rewrite(f: HTTPURLRewriteFilter) -> HTTPRewrite | None:
    uri, regex = "", None
    if f.path is not None:
        if f.path.type == "ReplacePrefixMatch":
            uri = (f.path.replace_prefix_match or "").removesuffix("/") or "/"
        elif f.path.type == "ReplaceFullPath":
            regex = RegexRewrite(match="/.*", rewrite=f.path.replace_full_path or "")
    rewrite = HTTPRewrite(uri=uri, authority=f.hostname or "", uri_regex_rewrite=regex)
    return rewrite if (uri or regex or rewrite.authority) else None


_SCHEME_HOST = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+$"


def _origin_match(origin: str) -> StringMatch:
    """An ``allowOrigins`` entry: exact, or a regex where it has ``*`` wildcards."""
    if origin == "*":
        return StringMatch(regex=_SCHEME_HOST)
    if "*" not in origin:
        return StringMatch(exact=origin)
    return StringMatch(regex="^" + ".*".join(re.escape(p) for p in origin.split("*")) + "$")


def _cors(f: HTTPCORSFilter) -> CorsPolicy:
    return CorsPolicy(
        allow_origins=tuple(_origin_match(o) for o in f.allow_origins if o),
        allow_methods=tuple(f.allow_methods),
        allow_headers=tuple(f.allow_headers),
        expose_headers=tuple(f.expose_headers),
        max_age=timedelta(seconds=f.max_age) if f.max_age > 0 else None,
        allow_credentials=True if f.allow_credentials else None,
        unmatched_preflights="IGNORE",
    )


def _uri_match(match: HTTPRouteMatch) -> StringMatch | None:
    path = match.path
    if path is None:
        return StringMatch(prefix="/")
    if path.type == "PathPrefix":
        return StringMatch(prefix=path.value if path.value == "/" else path.value.removesuffix("/"))
    if path.type == "Exact":
        return StringMatch(exact=path.value)
    if path.type == "RegularExpression":
        return StringMatch(regex=path.value)
    return None


def _string_matches(items: tuple, kind: str) -> tuple[FrozenDict[str, StringMatch] | None, ConfigError | None]:  # type: ignore[type-arg]
    out: dict[str, StringMatch] = {}
    for item in items:
        if item.type == "Exact":
            out[item.name] = StringMatch(exact=item.value)
        elif item.type == "RegularExpression":
            out[item.name] = StringMatch(regex=item.value)
        else:
            return None, ConfigError("InvalidConfiguration", f'unknown type: "{item.type}" is not supported {kind} type')
    return FrozenDict(out), None


def _http_match(match: HTTPRouteMatch) -> tuple[HTTPMatchRequest | None, ConfigError | None]:
    uri = _uri_match(match)
    if uri is None:
        assert match.path is not None
        return None, ConfigError("InvalidConfiguration", f'unknown type: "{match.path.type}" is not supported Path match type')
    headers, err = _string_matches(match.headers, "HeaderMatch")
    if err is not None:
        return None, err
    params, err = _string_matches(match.query_params, "QueryParams")
    if err is not None:
        return None, err
    method = StringMatch(exact=match.method) if match.method is not None else None
    return HTTPMatchRequest(uri=uri, headers=headers or FrozenDict(), query_params=params or FrozenDict(), method=method), None


def _route_name(rule_name: str | None, route: HTTPRoute | GRPCRoute, position: int) -> str:
    return rule_name if rule_name is not None else f"{route.meta.namespace}.{route.meta.name}.{position}"


def _apply_filters(
    ctx: RouteContext, filters: tuple[HTTPRouteFilter, ...], route: HTTPRoute | GRPCRoute, out: dict, enforce: bool
) -> ConfigError | None:
    """Fill ``out`` (HTTPRoute fields) from route-level filters; a hard error is raised as
    ``_Hard``, a mirror to an unusable backend is returned (soft)."""
    soft = None
    allowed = {"RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror"}
    if isinstance(route, HTTPRoute):
        allowed |= {"RequestRedirect", "URLRewrite", "CORS"}
    for f in filters:
        if f.type not in allowed:
            raise _Hard(ConfigError("InvalidFilter", f'unsupported filter type "{f.type}"'))
        if f.type == "RequestHeaderModifier":
            out["headers"] = _with_headers(out.get("headers"), request=_header_operations(f.request_header_modifier))
        elif f.type == "ResponseHeaderModifier":
            out["headers"] = _with_headers(out.get("headers"), response=_header_operations(f.response_header_modifier))
        elif f.type == "RequestRedirect" and f.request_redirect is not None:
            out["redirect"] = _redirect(f.request_redirect)
        elif f.type == "URLRewrite" and f.url_rewrite is not None:
            out["rewrite"] = _rewrite(f.url_rewrite)
        elif f.type == "CORS" and f.cors is not None:
            out["cors_policy"] = _cors(f.cors)
        elif f.type == "RequestMirror" and f.request_mirror is not None:
            mirror = f.request_mirror
            dest, err = build_destination(ctx, mirror.backend_ref, route.meta.namespace, enforce, route.KIND)
            if err is not None:
                if err.reason not in SOFT_REASONS or isinstance(route, GRPCRoute):
                    raise _Hard(err)
                soft = err
                continue
            percent = None
            if mirror.fraction is not None:
                percent = Percent(100 * mirror.fraction.numerator / (mirror.fraction.denominator or 100))
            elif mirror.percent is not None:
                percent = Percent(float(mirror.percent))
            out["mirrors"] = (*out.get("mirrors", ()), HTTPMirrorPolicy(destination=dest, percentage=percent))
    return soft


class _Hard(Exception):
    def __init__(self, error: ConfigError) -> None:
        self.error = error


def weight_of(backend: HTTPBackendRef | BackendRef) -> int:
    return backend.weight if backend.weight is not None else 1  # the API's default


def resolved_backends(
    ctx: RouteContext, backends: Sequence[HTTPBackendRef | BackendRef], route: AnyRoute, enforce: bool
) -> Iterator[tuple[HTTPBackendRef | BackendRef, Destination | None, int, ConfigError | None]]:
    """Istio's destinations of backendRefs: those of weight 0 left out, a lone one unweighted
    (weight 0 in Istio's output), each with its destination and its error, if any."""
    action = [b for b in backends if weight_of(b) != 0]
    weights = [weight_of(b) for b in action] if len(action) != 1 else [0]
    for backend, weight in zip(action, weights):
        dest, err = build_destination(ctx, backend.ref, route.meta.namespace, enforce, route.KIND)
        yield backend, dest, weight, err


def _destinations(
    ctx: RouteContext, backends: tuple[HTTPBackendRef, ...], route: HTTPRoute | GRPCRoute, enforce: bool
) -> tuple[tuple[HTTPRouteDestination, ...], ConfigError | None]:
    soft = None
    out = []
    for backend, dest, weight, err in resolved_backends(ctx, backends, route, enforce):
        assert isinstance(backend, HTTPBackendRef)
        if err is not None:
            if err.reason not in SOFT_REASONS:
                raise _Hard(err)
            soft = err
        headers = None
        for f in backend.filters:
            if f.type == "RequestHeaderModifier":
                headers = _with_headers(headers, request=_header_operations(f.request_header_modifier))
            elif f.type == "ResponseHeaderModifier":
                headers = _with_headers(headers, response=_header_operations(f.response_header_modifier))
            else:
                raise _Hard(ConfigError("InvalidFilter", f'unsupported filter type "{f.type}"'))
        out.append(HTTPRouteDestination(destination=dest, weight=weight, headers=headers))
    return tuple(out), soft


def _finish(
    ctx: RouteContext, fields: dict, backends: tuple[HTTPBackendRef, ...], route: HTTPRoute | GRPCRoute,
    enforce: bool, soft: ConfigError | None,
) -> tuple[IstioHTTPRoute, ConfigError | None]:
    if not backends and not enforce:
        return IstioHTTPRoute(**fields), soft  # mesh: no backend keeps the service's own routing
    if sum(weight_of(b) for b in backends) == 0 and fields.get("redirect") is None:
        # The spec requires a 500 when no backend has a weight above 0.
        fields["direct_response"] = HTTPDirectResponse(status=500)
        return IstioHTTPRoute(**fields), soft
    destinations, backend_error = _destinations(ctx, backends, route, enforce)
    fields["route"] = destinations
    return IstioHTTPRoute(**fields), join_errors(backend_error, soft)


def convert_http_rule(
    ctx: RouteContext, rule: HTTPRouteRule, match: HTTPRouteMatch | None, route: HTTPRoute, position: int, enforce: bool
) -> tuple[IstioHTTPRoute | None, ConfigError | None]:
    """One rule with at most one match (Istio splits rules per match) -> an Istio HTTPRoute."""
    fields: dict = {"name": _route_name(rule.name, route, position)}
    try:
        if match is not None:
            converted, err = _http_match(match)
            if err is not None:
                return None, err
            fields["match"] = (converted,)
        soft = _apply_filters(ctx, rule.filters, route, fields, enforce)
        if rule.retry is not None:
            retry_on = (*DEFAULT_RETRY_ON, *(str(c) for c in rule.retry.codes))
            attempts = rule.retry.attempts if rule.retry.attempts is not None else 2
            fields["retries"] = HTTPRetry(attempts=attempts, retry_on=",".join(retry_on) if attempts else "",
                                          backoff=rule.retry.backoff)
        if rule.timeouts is not None:
            if rule.timeouts.request:
                fields["timeout"] = rule.timeouts.request
            if rule.timeouts.backend_request:
                if "retries" in fields:
                    r = fields["retries"]
                    fields["retries"] = HTTPRetry(attempts=r.attempts, retry_on=r.retry_on, backoff=r.backoff,
                                                  per_try_timeout=rule.timeouts.backend_request)
                else:
                    fields["timeout"] = rule.timeouts.backend_request
        return _finish(ctx, fields, rule.backend_refs, route, enforce, soft)
    except _Hard as hard:
        return None, hard.error


def _grpc_uri(rule_match: object) -> tuple[StringMatch | None, ConfigError | None]:
    method = getattr(rule_match, "method", None)
    if method is None:
        return None, None
    if method.method is None and method.service is None:
        return None, ConfigError("InvalidConfiguration", "gRPC match must have method or service defined")
    service, name = method.service, method.method
    if method.type == "Exact":
        if name is None:
            return StringMatch(prefix=f"/{service}/"), None
        if service is None:
            return StringMatch(regex=f"/[^/]+/{name}"), None
        return StringMatch(exact=f"/{service}/{name}"), None
    if method.type == "RegularExpression":
        if name is None:
            return StringMatch(regex=f"/{service}/.+"), None
        if service is None:
            return StringMatch(regex=f"/[^/]+/{name}"), None
        return StringMatch(regex=f"/{service}/{name}"), None
    return None, ConfigError("InvalidConfiguration", f'unknown type: "{method.type}" is not supported Path match type')


def convert_grpc_rule(
    ctx: RouteContext, rule: GRPCRouteRule, match: object | None, route: GRPCRoute, position: int, enforce: bool
) -> tuple[IstioHTTPRoute | None, ConfigError | None]:
    fields: dict = {"name": _route_name(rule.name, route, position)}
    try:
        if match is not None:
            uri, err = _grpc_uri(match)
            if err is not None:
                return None, err
            headers, err = _string_matches(getattr(match, "headers", ()), "HeaderMatch")
            if err is not None:
                return None, err
            fields["match"] = (HTTPMatchRequest(uri=uri, headers=headers or FrozenDict()),)
        soft = _apply_filters(ctx, rule.filters, route, fields, enforce)
        return _finish(ctx, fields, rule.backend_refs, route, enforce, soft)
    except _Hard as hard:
        return None, hard.error


def _uri_rank(m: HTTPMatchRequest) -> tuple[int, int]:
    uri = m.uri
    if uri is None:
        return -1, 0
    if uri.exact is not None:
        return 3, len(uri.exact)
    if uri.prefix is not None:
        return 2, len(uri.prefix)
    return 1, len(uri.regex or "")


def sort_http_routes(routes: list[IstioHTTPRoute]) -> list[IstioHTTPRoute]:
    """Istio's sortHTTPRoutes (the Gateway API's precedence), stable: routes without a match
    last; then Exact > Prefix > Regex, longer paths, a method, more headers, more params."""

    def key(r: IstioHTTPRoute) -> tuple:  # type: ignore[type-arg]
        if not r.match:
            return (1,)
        m = r.match[0]
        rank, length = _uri_rank(m)
        return (0, -rank, -length, 0 if m.method is not None else 1, -len(m.headers), -len(m.query_params))

    return sorted(routes, key=key)
