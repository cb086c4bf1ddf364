"""Routes -> VirtualServices (Istio's HTTPRouteCollection, GRPCRouteCollection,
TCPRouteCollection, TLSRouteCollection and mergeHTTPRoutes).

HTTP and gRPC routes give one VirtualService per (gateway listener, host), merged across
routes in Gateway API precedence; for a Service parent (GAMMA) one per (namespace, port,
service host) bound to the ``mesh`` gateway, so it applies to the sidecars calling it.
TCP and TLS routes give one VirtualService per parent and host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from controlplane.model.base import ObjectMeta
from controlplane.model.common import PortSelector
from controlplane.model.frozen import FrozenDict
from controlplane.model.gateway_api import (
    AnyRoute,
    GRPCRoute,
    GRPCRouteRule,
    HTTPRoute,
    HTTPRouteRule,
    L4RouteRule,
    TCPRoute,
    TLSRoute,
)
from controlplane.model.hosts import hosts_overlap
from controlplane.model.virtual_service import (
    Destination,
    HTTPMatchRequest,
    L4MatchAttributes,
    RouteDestination,
    TLSMatchAttributes,
    VirtualService,
    VirtualServiceSpec,
)
from controlplane.model.virtual_service import HTTPRoute as IstioHTTPRoute
from controlplane.model.virtual_service import TCPRoute as IstioTCPRoute
from controlplane.model.virtual_service import TLSRoute as IstioTLSRoute
from controlplane.translate.gateway_api.gateways import INTERNAL_SUFFIX, ParentInfo
from controlplane.translate.gateway_api.http import (
    SOFT_REASONS,
    RouteContext,
    convert_grpc_rule,
    convert_http_rule,
    resolved_backends,
    sort_http_routes,
    weight_of,
)
from controlplane.translate.gateway_api.parents import (
    LISTENER_PARENTS,
    RouteParent,
    resolve_parents,
    route_parent_statuses,
)
from controlplane.translate.gateway_api.status import ConfigError, ObjectStatus

ANNOTATION_PARENTS = "internal.istio.io/parents"
ANNOTATION_SEMANTICS = "internal.istio.io/route-semantics"


@dataclass
class RouteConversion:
    virtual_services: list[VirtualService] = field(default_factory=list)
    statuses: list[ObjectStatus] = field(default_factory=list)
    # (gateway namespace, gateway name, listener) -> routes attached
    attachments: dict[tuple[str, str, str, str], set[tuple[str, str, str]]] = field(default_factory=dict)
    # HTTP/gRPC VirtualServices before merging: key -> [(route, gateway, routes, exportTo)]
    _http: dict[str, list[tuple[AnyRoute, str, tuple[IstioHTTPRoute, ...], tuple[str, ...]]]] = field(
        default_factory=dict
    )


@dataclass(frozen=True, slots=True)
class _Result:
    routes: tuple = ()  # type: ignore[type-arg]
    error: ConfigError | None = None


def _convert_rules(items: Iterator[tuple[object | None, ConfigError | None]]) -> _Result:
    """Istio's computeRoute.convertRules: a rule that gives nothing is a hard error (no routes
    at all); an error beside a route is kept and reported."""
    routes = []
    error = None
    for converted, err in items:
        if converted is None:
            return _Result((), err)
        if err is not None:
            error = err
        routes.append(converted)
    return _Result(tuple(routes), error)


def _route_meta(route: AnyRoute, name: str, namespace: str | None = None, parents: str | None = None) -> ObjectMeta:
    return ObjectMeta(
        name=name,
        namespace=namespace or route.meta.namespace,
        annotations=FrozenDict({
            ANNOTATION_PARENTS: parents or f"{route.KIND}/{route.meta.name}.{route.meta.namespace}",
            ANNOTATION_SEMANTICS: "gateway",
        }),
        origin=route.meta.origin,
        creation_timestamp=route.meta.creation_timestamp,
    )


def _mesh_hosts(parent: RouteParent, ctx: RouteContext) -> tuple[str, ...]:
    if parent.kind == "ServiceEntry":
        entry = ctx.inputs.service_entries.get((parent.namespace, parent.ref.name))
        return tuple(entry.spec.hosts) if entry is not None else ()
    return (f"{parent.ref.name}.{parent.namespace}.svc.{ctx.domain_suffix}",)


def _with_port(routes: tuple[IstioHTTPRoute, ...], port: int) -> tuple[IstioHTTPRoute, ...]:
    out = []
    for r in routes:
        matches = tuple(replace(m, port=port) for m in r.match) or (HTTPMatchRequest(port=port),)
        out.append(replace(r, match=matches))
    return tuple(out)


def _record(out: RouteConversion, route: AnyRoute, parents: list[RouteParent], gw: _Result, mesh: _Result) -> None:
    status = ObjectStatus(route.KIND, route.meta.namespace, route.meta.name,
                          parents=route_parent_statuses(parents, route.meta.namespace, gw.error, mesh.error))
    out.statuses.append(status)
    for p in parents:
        if p.denied is None and p.kind in LISTENER_PARENTS:
            key = (p.kind, p.namespace, p.ref.name, p.parent.section_name)
            out.attachments.setdefault(key, set()).add((route.KIND, route.meta.namespace, route.meta.name))


def _export_to(parent: RouteParent, route: AnyRoute) -> tuple[str, ...]:
    """GAMMA: a producer route (in the service's namespace) applies to every client; a
    consumer route (elsewhere) only to the clients of its own namespace."""
    return (".",) if parent.is_mesh and parent.namespace != route.meta.namespace else ()


def _filtered(parents: list[RouteParent]) -> list[RouteParent]:
    return sorted((p for p in parents if p.denied is None), key=lambda p: p.parent.internal_name)


def convert_http_like(
    route: HTTPRoute | GRPCRoute, ctx: RouteContext, gateway_parents: dict[tuple[str, str, str], list[ParentInfo]],
    out: RouteConversion,
) -> None:
    parents = resolve_parents(route, route.spec.hostnames, gateway_parents, ctx.inputs)
    convert: Callable = convert_http_rule if isinstance(route, HTTPRoute) else convert_grpc_rule

    def rules(mesh: bool) -> Iterator[tuple[object | None, ConfigError | None]]:
        all_rules: tuple[HTTPRouteRule | GRPCRouteRule, ...] = route.spec.rules
        for position, rule in enumerate(all_rules):
            matches: tuple[object | None, ...] = rule.matches or (None,)
            for match in matches:
                yield convert(ctx, rule, match, route, position, not mesh)

    mesh_result = _convert_rules(rules(True)) if any(p.is_mesh for p in parents) else _Result()
    gw_result = _convert_rules(rules(False)) if any(not p.is_mesh for p in parents) else _Result()
    _record(out, route, parents, gw_result, mesh_result)
    for parent in _filtered(parents):
        key = parent.parent.internal_name
        hosts = tuple(route.spec.hostnames) or ("*",)
        routes = gw_result.routes
        if parent.is_mesh:
            routes = mesh_result.routes
            key = route.meta.namespace
            if parent.ref.port is not None:
                routes = _with_port(routes, parent.ref.port)
                key += f"/{parent.ref.port}"
            hosts = _mesh_hosts(parent, ctx)
        if not routes:
            continue
        for host in hosts:
            if not parent.hostname_allowed(host):
                continue
            item = (route, parent.parent.internal_name, routes, _export_to(parent, route))
            out._http.setdefault(f"{key}/{host}", []).append(item)


def merge_http(out: RouteConversion) -> None:
    """Istio's mergeHTTPRoutes: one VirtualService per key, routes of every HTTPRoute (in
    creation order, here namespace/name) sorted by Gateway API precedence."""
    for key, items in sorted(out._http.items()):
        items.sort(key=lambda item: (item[0].meta.namespace, item[0].meta.name))
        first, gateway, _, export_to = items[0]
        routes = sort_http_routes([r for _, _, rs, _ in items for r in rs])
        host = key.rpartition("/")[2]
        parents = ",".join(f"{r.KIND}/{r.meta.name}.{r.meta.namespace}" for r, _, _, _ in items)
        out.virtual_services.append(VirtualService(
            _route_meta(first, key.replace("/", "~"), parents=parents),
            VirtualServiceSpec(hosts=(host,), gateways=(gateway,), http=tuple(routes), export_to=export_to),
        ))
    out._http.clear()


_ZERO_WEIGHT = (RouteDestination(Destination("internal.cluster.local", "zero-weight", PortSelector(65535)), 0),)


def _l4_destinations(
    ctx: RouteContext, rule: L4RouteRule, route: TLSRoute | TCPRoute, enforce: bool
) -> tuple[tuple[RouteDestination, ...] | None, ConfigError | None]:
    if sum(weight_of(b) for b in rule.backend_refs) == 0:
        # The spec wants connections refused: route to a destination that does not exist.
        return _ZERO_WEIGHT, None
    soft = None
    out = []
    for _, dest, weight, err in resolved_backends(ctx, rule.backend_refs, route, enforce):
        if err is not None:
            if err.reason not in SOFT_REASONS:
                return None, err
            soft = err
        out.append(RouteDestination(destination=dest, weight=weight))
    return tuple(out), soft


def convert_l4(
    route: TLSRoute | TCPRoute, ctx: RouteContext, gateway_parents: dict[tuple[str, str, str], list[ParentInfo]],
    out: RouteConversion,
) -> None:
    tls = isinstance(route, TLSRoute)
    hostnames = tuple(route.spec.hostnames) if isinstance(route, TLSRoute) else ()
    parents = resolve_parents(route, hostnames, gateway_parents, ctx.inputs)

    def rules(mesh: bool) -> Iterator[tuple[object | None, ConfigError | None]]:
        for rule in route.spec.rules:
            dest, err = _l4_destinations(ctx, rule, route, not mesh)
            if dest is None:
                yield None, err
            elif tls and dest is not _ZERO_WEIGHT:
                yield IstioTLSRoute(match=(TLSMatchAttributes(sni_hosts=hostnames or ("*",)),), route=dest), err
            elif tls:
                yield IstioTLSRoute(route=dest), err
            else:
                yield IstioTCPRoute(route=dest), err

    mesh_result = _convert_rules(rules(True)) if any(p.is_mesh for p in parents) else _Result()
    gw_result = _convert_rules(rules(False)) if any(not p.is_mesh for p in parents) else _Result()
    _record(out, route, parents, gw_result, mesh_result)
    count = 0
    label = "tls" if tls else "tcp"
    for parent in _filtered(parents):
        routes = gw_result.routes
        hosts: tuple[str, ...] = (hostnames or ("*",)) if tls else ("*",)
        if parent.is_mesh:
            routes = mesh_result.routes
            hosts = _mesh_hosts(parent, ctx)
            routes = _mesh_l4(routes, parent.ref.port, hosts, tls)
        for host in hosts:
            chosen = _compatible(routes, host) if tls and parent.is_mesh else routes
            spec = VirtualServiceSpec(hosts=(host,), gateways=(parent.parent.internal_name,),
                                      export_to=_export_to(parent, route))
            spec = replace(spec, tls=chosen) if tls else replace(spec, tcp=chosen)
            name = f"{route.meta.name}~{label}~{count}~{INTERNAL_SUFFIX}"
            out.virtual_services.append(VirtualService(_route_meta(route, name), spec))
            count += 1


def _mesh_l4(routes: tuple, port: int | None, parent_hosts: tuple[str, ...], tls: bool) -> tuple:  # type: ignore[type-arg]
    out = []
    for r in routes:
        if tls:
            matches = r.match
            if len(matches) == 1 and matches[0].sni_hosts == ("*",):
                matches = (replace(matches[0], sni_hosts=parent_hosts),)
            if port is not None:
                matches = tuple(replace(m, port=port) for m in matches)
            out.append(replace(r, match=matches))
        elif port is not None:
            matches = tuple(replace(m, port=port) for m in r.match) or (L4MatchAttributes(port=port),)
            out.append(replace(r, match=matches))
        else:
            out.append(r)
    return tuple(out)


def _compatible(routes: tuple, parent_host: str) -> tuple:  # type: ignore[type-arg]
    out = []
    for r in routes:
        if len(r.match) == 1 and len(r.match[0].sni_hosts) > 1:
            hosts = tuple(h for h in r.match[0].sni_hosts if hosts_overlap(parent_host, h))
            r = replace(r, match=(replace(r.match[0], sni_hosts=hosts),))
        out.append(r)
    return tuple(out)
