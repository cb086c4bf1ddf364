"""Outbound RouteConfigurations: one per port, a virtual host per service, VS routes.

Across snapshots (translate/units.py): each virtual host is a unit; a port's configuration
keeps its virtual hosts and, while none changed, itself (the same message, serialized once).
After a VirtualService change only the virtual hosts of the hosts it routes are looked up again.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from functools import partial

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from controlplane.model.hosts import resolve_short_name
from controlplane.model.mesh import ALLOW_ANY
from controlplane.model.virtual_service import (
    PREFIX_REDIRECT,
    Destination,
    HTTPDirectResponse,
    HTTPRedirect,
    HTTPRoute,
    VirtualService,
)
from controlplane.translate import destination_policy as dp
from controlplane.translate import http_features as hf
from controlplane.translate import names
from controlplane.translate.filters import per_route_configs
from controlplane.translate.http_route_match import applies_to_proxy, route_match
from controlplane.translate.index.context import MESH_GATEWAY, PushContext, VirtualServiceEntry
from controlplane.translate.index.registry import MeshService
from controlplane.translate.pb import duration
from controlplane.translate.protocol import is_http
from controlplane.translate.proxy import Proxy
from controlplane.translate.scope import EgressScope
from controlplane.translate.units import Ident, ident

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


@dataclass(frozen=True, slots=True)
class RouteInputs:
    ctx: PushContext
    proxy: Proxy
    outbound_policy: str
    gateway: str = MESH_GATEWAY  # whose routes: the mesh's (sidecars) or a Gateway's, "ns/name"


def virtual_host_domains(service: MeshService, port: int, proxy_ns: str, domain_suffix: str) -> list[str]:
    """Istio's domains: FQDN, the shorter names sharing the proxy's DNS search path, the VIP;
    each with and without the port."""
    hosts = [service.hostname]
    kube_suffix = f".{service.namespace}.svc.{domain_suffix}"
    if service.source_kind == "Service" and service.hostname.endswith(kube_suffix):
        short = service.hostname[: -len(kube_suffix)]
        hosts += [f"{short}.{service.namespace}", f"{short}.{service.namespace}.svc"]
        if service.namespace == proxy_ns:
            hosts.append(short)
    hosts += list(service.addresses)
    out = []
    for h in hosts:
        out += [h, f"{h}:{port}"]
    return out


def _destination_port(dest: Destination, ctx: PushContext, host: str, listener_port: int) -> int:
    if dest.port is not None and dest.port.number:
        return dest.port.number
    service = ctx.service_by_host.get(host)
    if service is not None and len(service.ports) == 1:
        return service.ports[0].number
    return listener_port


def _cluster_for(dest: Destination, entry: VirtualServiceEntry, inputs: RouteInputs, port: int) -> str:
    host = resolve_short_name(dest.host, entry.namespace, inputs.ctx.mesh.domain_suffix)
    return names.outbound_cluster(host, _destination_port(dest, inputs.ctx, host, port), dest.subset)


def _hash_policy(inputs: RouteInputs, cluster: str) -> list[rc.RouteAction.HashPolicy]:
    parsed = names.parse_cluster_name(cluster)
    if parsed is None:
        return []
    _, port, subset_name, host = parsed
    entry = inputs.ctx.destination_rule(inputs.proxy, host)
    if entry is None:
        return []
    subset = next((s for s in entry.rule.spec.subsets if s.name == subset_name), None) if subset_name else None
    return dp.hash_policies(dp.effective_policy(entry.rule.spec, port, subset).load_balancer)


def _route_action(
    http: HTTPRoute, entry: VirtualServiceEntry, inputs: RouteInputs, port: int
) -> rc.RouteAction:
    action = rc.RouteAction()
    dests = [(d, d.destination) for d in http.route if d.destination is not None]
    if len(dests) == 1:
        action.cluster = _cluster_for(dests[0][1], entry, inputs, port)
    else:
        for d, dest in dests:
            wc = action.weighted_clusters.clusters.add(
                name=_cluster_for(dest, entry, inputs, port)
            )
            wc.weight.value = d.weight
            if d.headers is not None:
                add, remove = hf.header_options(d.headers.request)
                wc.request_headers_to_add.extend(add)
                wc.request_headers_to_remove.extend(remove)
                add, remove = hf.header_options(d.headers.response)
                wc.response_headers_to_add.extend(add)
                wc.response_headers_to_remove.extend(remove)
    first = action.cluster or (action.weighted_clusters.clusters[0].name if dests else "")
    action.hash_policy.extend(_hash_policy(inputs, first) if first else [])
    action.timeout.CopyFrom(duration(http.timeout.total_seconds() if http.timeout is not None else 0))
    retry = hf.retry_policy(http.retries, inputs.ctx.mesh)
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
    action.request_mirror_policies.extend(
        hf.mirror_policies(http, lambda d: _cluster_for(d, entry, inputs, port))
    )
    rw = http.rewrite
    if rw is not None:
        if rw.uri:
            action.prefix_rewrite = rw.uri
        elif rw.uri_regex_rewrite is not None:
            action.regex_rewrite.pattern.regex = rw.uri_regex_rewrite.match
            action.regex_rewrite.substitution = rw.uri_regex_rewrite.rewrite
        if rw.authority:
            action.host_rewrite_literal = rw.authority
    return action


def _redirect(r: HTTPRedirect) -> rc.RedirectAction:
    out = rc.RedirectAction(response_code=_REDIRECT_CODES.get(r.redirect_code or 301, rc.RedirectAction.MOVED_PERMANENTLY))
    if r.uri.startswith(PREFIX_REDIRECT):  # Istio: replace the matched prefix only
        out.prefix_rewrite = r.uri.removeprefix(PREFIX_REDIRECT)
    elif r.uri:
        out.path_redirect = r.uri
    if r.authority:
        out.host_redirect = r.authority
    if r.port:
        out.port_redirect = r.port
    if r.scheme:
        out.scheme_redirect = r.scheme
    return out


def _direct_response(d: HTTPDirectResponse) -> rc.DirectResponseAction:
    out = rc.DirectResponseAction(status=d.status)
    if d.body is not None:
        if d.body.string is not None:
            out.body.inline_string = d.body.string
        elif d.body.bytes is not None:
            import base64

            out.body.inline_bytes = base64.b64decode(d.body.bytes)
    return out


def http_routes(entry: VirtualServiceEntry, inputs: RouteInputs, port: int) -> list[rc.Route]:
    """Envoy routes for one VS on one port, one per match clause, in VS order."""
    routes: list[rc.Route] = []
    labels = inputs.proxy.label_map
    for index, http in enumerate(entry.vs.spec.http):
        if http.delegate is not None:
            continue
        matches = http.match or (None,)
        for match in matches:
            if not applies_to_proxy(match, port, labels, inputs.proxy.namespace, inputs.gateway, entry.namespace):
                continue
            route = rc.Route(match=route_match(match))
            name = http.name or f"{entry.vs.meta.namespace}/{entry.vs.meta.name}.{index}"
            route.name = f"{name}.{match.name}" if match is not None and match.name else name
            if http.redirect is not None:
                route.redirect.CopyFrom(_redirect(http.redirect))
            elif http.direct_response is not None:
                route.direct_response.CopyFrom(_direct_response(http.direct_response))
            else:
                route.route.CopyFrom(_route_action(http, entry, inputs, port))
            per_route_configs(http, route)
            if http.headers is not None:
                add, remove = hf.header_options(http.headers.request)
                route.request_headers_to_add.extend(add)
                route.request_headers_to_remove.extend(remove)
                add, remove = hf.header_options(http.headers.response)
                route.response_headers_to_add.extend(add)
                route.response_headers_to_remove.extend(remove)
            if len(http.route) == 1 and http.route[0].headers is not None:
                h = http.route[0].headers
                for ops, adds, removes in (
                    (h.request, route.request_headers_to_add, route.request_headers_to_remove),
                    (h.response, route.response_headers_to_add, route.response_headers_to_remove),
                ):
                    add, remove = hf.header_options(ops)
                    adds.extend(add)
                    removes.extend(remove)
            routes.append(route)
            if match is None:
                break
    return routes


def default_route(service: MeshService, port: int, inputs: RouteInputs) -> rc.Route:
    cluster = names.outbound_cluster(service.hostname, port)
    action = rc.RouteAction(cluster=cluster)
    action.timeout.CopyFrom(duration(0))
    action.hash_policy.extend(_hash_policy(inputs, cluster))
    retry = hf.retry_policy(None, inputs.ctx.mesh)
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
    return rc.Route(name="default", match=rc.RouteMatch(prefix="/"), route=action)


def catch_all_virtual_host(policy: str) -> rc.VirtualHost:
    if policy == ALLOW_ANY:
        action = rc.RouteAction(cluster=names.PASSTHROUGH_CLUSTER)
        action.timeout.CopyFrom(duration(0))
        route = rc.Route(name=names.ALLOW_ANY_ROUTE, match=rc.RouteMatch(prefix="/"), route=action)
        return rc.VirtualHost(name=names.ALLOW_ANY_ROUTE, domains=["*"], routes=[route])
    route = rc.Route(
        name=names.BLACKHOLE_ROUTE,
        match=rc.RouteMatch(prefix="/"),
        direct_response=rc.DirectResponseAction(status=502),
    )
    return rc.VirtualHost(name=names.BLACKHOLE_ROUTE, domains=["*"], routes=[route])


def outbound_route_config(
    name: str, port: int, egress: EgressScope, inputs: RouteInputs, slot: Hashable | None = None
) -> route_pb2.RouteConfiguration:
    """The RouteConfiguration for HTTP traffic to ``port`` (named ``name``, e.g. ``9080``).

    Its virtual hosts are units (one per service); the configuration made of them is kept in
    ``slot`` while they are the very same ones (a change elsewhere then costs no copy of a
    thousand virtual hosts, and the xDS side finds the same message, serialized before)."""
    vhosts = _virtual_hosts(port, egress, inputs, slot)
    policy = inputs.outbound_policy
    if slot is None:
        return _route_config(name, vhosts, policy)
    # By ``==`` (UnitCache.latest): the tuple compares the same objects by identity, in C;
    # and holding them keeps the comparison sound (no id is ever reused meanwhile).
    return inputs.ctx.units.latest(
        ("route_config", slot), (name, policy, vhosts), partial(_route_config, name, vhosts, policy)
    )


def _route_config(name: str, vhosts: tuple[rc.VirtualHost, ...], policy: str) -> route_pb2.RouteConfiguration:
    rcfg = route_pb2.RouteConfiguration(name=name, virtual_hosts=vhosts)
    rcfg.validate_clusters.value = False
    rcfg.virtual_hosts.append(catch_all_virtual_host(policy))
    return rcfg


@dataclass(frozen=True, slots=True)
class _HeldHosts:
    """A route configuration's virtual hosts and what decided them, kept for the next
    snapshot: while the rest is the same, only the hosts whose VirtualService changed are
    looked up again."""

    base: tuple[object, ...]  # epoch, services, proxy, gateway, port
    routing: dict[str, VirtualService]  # exact host -> the VirtualService routing it
    wildcards: tuple[tuple[str, VirtualService], ...]
    services: tuple[tuple[MeshService, tuple[str, ...]], ...]  # per virtual host: its domains
    index: dict[str, int]  # hostname -> its virtual host
    vhosts: tuple[rc.VirtualHost, ...]


def _virtual_hosts(
    port: int, egress: EgressScope, inputs: RouteInputs, slot: Hashable | None
) -> tuple[rc.VirtualHost, ...]:
    """The virtual host units of ``egress``'s HTTP services on ``port``, in service order; a
    domain goes to the first service that claims it."""
    ns, units = inputs.proxy.namespace, inputs.ctx.units
    epoch = _routing_epoch(inputs.ctx)
    base = (epoch, egress.services, ns, inputs.proxy.labels, inputs.gateway, port)
    routing = {host: e.vs for host, e in egress.vs_exact.items()}
    wildcards = tuple((pattern, e.vs) for pattern, e in egress.vs_wildcard)
    held = units.held(("virtual_hosts", slot)) if slot is not None else None
    if isinstance(held, _HeldHosts) and held.base == base and held.wildcards == wildcards:
        changed = {h for h in routing.keys() | held.routing.keys() if routing.get(h) is not held.routing.get(h)}
        vhosts = list(held.vhosts)
        for host in changed:
            i = held.index.get(host)
            if i is not None:
                kept_service, kept_domains = held.services[i]
                vhosts[i] = _virtual_host_unit(kept_service, port, list(kept_domains), egress, inputs, epoch)
        found = replace(held, routing=routing, vhosts=tuple(vhosts))
        units.hold(("virtual_hosts", slot), found)
        return found.vhosts
    made: list[rc.VirtualHost] = []
    services: list[tuple[MeshService, tuple[str, ...]]] = []
    used: set[str] = set()
    for service in egress.services:
        sp = service.port(port)
        if sp is None or not is_http(sp.protocol):
            continue
        all_domains = units.get(
            ("domains", Ident(service), port, service.namespace == ns),
            partial(_domains, service, port, ns, inputs.ctx.mesh.domain_suffix),
        )
        domains = [d for d in all_domains if d not in used]
        if not domains:
            continue
        used.update(domains)
        services.append((service, tuple(domains)))
        made.append(_virtual_host_unit(service, port, domains, egress, inputs, epoch))
    if slot is not None:
        index = {service.hostname: i for i, (service, _) in enumerate(services)}
        units.hold(("virtual_hosts", slot), _HeldHosts(base, routing, wildcards, tuple(services), index, tuple(made)))
    return tuple(made)


def _virtual_host_unit(
    service: MeshService, port: int, domains: list[str], egress: EgressScope, inputs: RouteInputs, epoch: Ident
) -> rc.VirtualHost:
    entry = egress.virtual_service_for(service.hostname)
    if entry is None or not entry.vs.spec.http:
        entry = None
    # While the services and DestinationRules stay (``epoch``), a virtual host is known by
    # its service, VirtualService and proxy alone: a routing change then looks up the full
    # key (_keyed_virtual_host) of the hosts its VirtualService routes alone. Of the proxy,
    # routes read the DestinationRules (by its view: one for most namespaces) and, where a
    # match tests them, its namespace and labels (as _routes_key).
    proxy, ctx = inputs.proxy, inputs.ctx
    by_labels = by_namespace = False
    if entry is not None:
        _, by_labels, by_namespace = ctx.units.get(
            ("routing_facts", Ident(entry.vs)), partial(_routing_facts, entry, ctx.mesh.domain_suffix)
        )
    quick = (
        "virtual_host_in", epoch, Ident(service), port, tuple(domains),
        ident(entry.vs) if entry is not None else None, entry.namespace if entry is not None else None,
        ctx.destination_rule_view(proxy), proxy.namespace if by_namespace else None,
        proxy.labels if by_labels else None, inputs.gateway,
    )
    return inputs.ctx.units.get(quick, partial(_keyed_virtual_host, service, port, domains, entry, inputs))


def _routing_epoch(ctx: PushContext) -> Ident:
    """A token that stays the same object while the services and DestinationRules do (the
    same objects: the store keeps unchanged ones): what ``_routes_key`` reads besides the
    VirtualService and the proxy."""
    rules = tuple(Ident(e.rule) for entries in ctx.routing.destination_rules.values() for e in entries)
    return Ident(ctx.units.get(("routing_epoch", Ident(ctx.services), rules), object))


def _keyed_virtual_host(
    service: MeshService, port: int, domains: list[str], entry: VirtualServiceEntry | None, inputs: RouteInputs
) -> rc.VirtualHost:
    routes_key = _routes_key(service, port, entry, inputs)
    key = ("virtual_host", tuple(domains), routes_key)
    return inputs.ctx.units.get(key, partial(_virtual_host, service, port, domains, entry, inputs, routes_key))


def _virtual_host(
    service: MeshService, port: int, domains: list[str], entry: VirtualServiceEntry | None, inputs: RouteInputs,
    routes_key: tuple,
) -> rc.VirtualHost:
    # The routes are a unit of their own: the virtual hosts of one service differ by domains
    # alone between proxy namespaces (the short name in its own), and share their routes.
    routes = inputs.ctx.units.get(("routes", routes_key), partial(_routes, service, port, entry, inputs))
    vhost = rc.VirtualHost(name=names.virtual_host_name(service.hostname, port), domains=domains, routes=routes)
    vhost.include_request_attempt_count = True
    return vhost


def _routes(
    service: MeshService, port: int, entry: VirtualServiceEntry | None, inputs: RouteInputs
) -> tuple[rc.Route, ...]:
    return tuple(http_routes(entry, inputs, port) if entry is not None else [default_route(service, port, inputs)])


def _routes_key(service: MeshService, port: int, entry: VirtualServiceEntry | None, inputs: RouteInputs) -> tuple:
    """Every input the routes of ``service``'s virtual host read besides the mesh config and
    its domains: the service's name, the VirtualService (by identity), what the proxy's own
    namespace and labels decide, and per destination host its ports and the DestinationRule
    its hash policy comes from."""
    ctx, proxy = inputs.ctx, inputs.proxy
    if entry is None:
        dr = ctx.destination_rule(proxy, service.hostname)
        return ("default", service.hostname, port, ident(dr.rule.spec if dr is not None else None))
    vs = entry.vs
    hosts, by_labels, by_namespace = ctx.units.get(
        ("routing_facts", Ident(vs)), partial(_routing_facts, entry, ctx.mesh.domain_suffix)
    )
    dependencies = []
    for host in hosts:
        target = ctx.service_by_host.get(host)
        dr = ctx.destination_rule(proxy, host)
        dependencies.append((
            host, target.ports if target is not None else None, ident(dr.rule.spec if dr is not None else None)
        ))
    # The proxy's namespace only where a match tests it: the other groups' first translations
    # then find the virtual hosts another namespace's group built (the DestinationRules each
    # destination's hash policy comes from, which the namespace picks, are in ``dependencies``).
    return (
        "virtual_service", service.hostname, Ident(vs), port, inputs.gateway,
        proxy.namespace if by_namespace else None, proxy.labels if by_labels else None, tuple(dependencies),
    )


def _domains(service: MeshService, port: int, proxy_ns: str, domain_suffix: str) -> tuple[str, ...]:
    return tuple(virtual_host_domains(service, port, proxy_ns, domain_suffix))


def _routing_facts(entry: VirtualServiceEntry, domain_suffix: str) -> tuple[tuple[str, ...], bool, bool]:
    """What a VirtualService's own content tells of its routes' inputs: the hosts its http
    routes send to (weighted destinations and mirrors, resolved), and whether any match tests
    the caller's labels, and its namespace."""
    https = entry.vs.spec.http
    destinations = [
        *(w.destination for http in https for w in http.route if w.destination is not None),
        *(http.mirror for http in https if http.mirror is not None),
        *(m.destination for http in https for m in http.mirrors if m.destination is not None),
    ]
    hosts = {resolve_short_name(d.host, entry.namespace, domain_suffix): None for d in destinations}
    by_labels = any(m is not None and m.source_labels for http in https for m in http.match)
    by_namespace = any(m is not None and m.source_namespace for http in https for m in http.match)
    return tuple(hosts), by_labels, by_namespace
