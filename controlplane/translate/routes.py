"""Outbound RouteConfigurations: one per port, a virtual host per service, VS routes.

Across snapshots (translate/units.py): each virtual host is a unit, with its bytes; a port's
configuration keeps its virtual hosts and, while none changed, itself (the same message,
serialized once). After a change only the virtual hosts it can reach are looked up again
(_virtual_hosts), and a new configuration is parsed from its virtual hosts' bytes joined.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from functools import partial

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from controlplane.model.destination_rule import DestinationRule
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
from controlplane.translate.pb import duration, field_entry
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


_VIRTUAL_HOSTS_FIELD = route_pb2.RouteConfiguration.DESCRIPTOR.fields_by_name["virtual_hosts"].number


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
    hosts = _virtual_hosts(port, egress, inputs, slot)
    policy = inputs.outbound_policy
    if slot is None:
        return _route_config(name, hosts.encoded, policy)
    # By ``==`` (UnitCache.latest): the tuple compares the same objects by identity, in C;
    # and holding them keeps the comparison sound (no id is ever reused meanwhile).
    return inputs.ctx.units.latest(
        ("route_config", slot), (name, policy, hosts.vhosts), partial(_route_config, name, hosts.encoded, policy)
    )


def _route_config(name: str, encoded: tuple[bytes, ...], policy: str) -> route_pb2.RouteConfiguration:
    """Parsed from the bytes of its parts, the virtual hosts' serialized once each (shared
    by every configuration that holds them): a join and one parse, not a copy of each."""
    head = route_pb2.RouteConfiguration(name=name)
    rest = route_pb2.RouteConfiguration(virtual_hosts=[catch_all_virtual_host(policy)])
    rest.validate_clusters.value = False
    # In field order, as the message serializes: name (1), virtual_hosts (2), validate_clusters (7).
    parts = (head.SerializeToString(deterministic=True), *encoded, rest.SerializeToString(deterministic=True))
    return route_pb2.RouteConfiguration.FromString(b"".join(parts))


@dataclass(frozen=True, slots=True)
class _VirtualHostUnit:
    """A virtual host with its bytes as an entry of a RouteConfiguration's ``virtual_hosts``
    (serialized once, shared by every configuration that holds it), and the hosts its routes
    read besides their own (its VirtualService's destinations: their ports, their rules)."""

    vhost: rc.VirtualHost
    encoded: bytes
    reads: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _HostPart:
    """One service's virtual host in a route configuration, and what decided it."""

    service: MeshService
    domains: tuple[str, ...] = ()  # every domain it claims (none: not an HTTP service on the port)
    unit: _VirtualHostUnit | None = None  # None: not an HTTP service on the port


@dataclass(frozen=True, slots=True)
class _HeldHosts:
    """A route configuration's virtual hosts and what decided them, kept for the next
    snapshot (see _virtual_hosts)."""

    base: tuple[object, ...]  # proxy namespace and labels, gateway, port
    index: int  # the serial of the service index they were made from
    rules: dict[int, tuple[DestinationRule, str]]  # id(rule) -> (the rule, held: its id stays unique; its host)
    routing: dict[str, VirtualService]  # exact host -> the VirtualService routing it
    wildcards: tuple[tuple[str, VirtualService], ...]
    # By hostname, every service of the scope; empty when two services claim one domain
    # (then only the order of all decides who gets it).
    parts: dict[str, _HostPart]
    owners: dict[str, str]  # domain -> the hostname claiming it
    vhosts: tuple[rc.VirtualHost, ...]
    encoded: tuple[bytes, ...]  # of each of ``vhosts``
    # (hostname, the hosts it reads) of the parts whose routes read other hosts
    routed: tuple[tuple[str, tuple[str, ...]], ...] = field(init=False)
    positions: dict[str, int] = field(init=False)  # hostname -> where its virtual host is in ``vhosts``

    def __post_init__(self) -> None:
        routed = tuple((host, p.unit.reads) for host, p in self.parts.items() if p.unit is not None and p.unit.reads)
        object.__setattr__(self, "routed", routed)
        at = {id(vhost): i for i, vhost in enumerate(self.vhosts)}
        positions = {host: at[id(p.unit.vhost)] for host, p in self.parts.items() if p.unit is not None}
        object.__setattr__(self, "positions", positions)


def _virtual_hosts(
    port: int, egress: EgressScope, inputs: RouteInputs, slot: Hashable | None
) -> _HeldHosts:
    """The virtual host units of ``egress``'s HTTP services on ``port``, in service order; a
    domain goes to the first service that claims it.

    Kept in ``slot`` for the next snapshots: while the proxy and the wildcard VirtualServices
    stay, only the virtual hosts a change can reach are looked up again (those of the services
    added or changed since, of the hosts whose exact DestinationRule or VirtualService changed,
    and those whose routes send to any of these); the others are the very same units."""
    ctx, units = inputs.ctx, inputs.ctx.units
    base = (inputs.proxy.namespace, inputs.proxy.labels, inputs.gateway, port)
    routing = {host: e.vs for host, e in egress.vs_exact.items()}
    wildcards = tuple((pattern, e.vs) for pattern, e in egress.vs_wildcard)
    rules = ctx.units.get(("rule_hosts", Ident(ctx.routing)), partial(_rule_hosts, ctx))
    held = units.held(("virtual_hosts", slot)) if slot is not None else None
    found = None
    if isinstance(held, _HeldHosts) and held.base == base and held.wildcards == wildcards:
        found = _updated_hosts(held, port, egress, inputs, rules, routing)
    if found is None:
        found = _all_hosts(port, egress, inputs, base, rules, routing, wildcards)
    if slot is not None:
        units.hold(("virtual_hosts", slot), found)
    return found


def _all_hosts(
    port: int, egress: EgressScope, inputs: RouteInputs, base: tuple[object, ...],
    rules: dict[int, tuple[DestinationRule, str]], routing: dict[str, VirtualService],
    wildcards: tuple[tuple[str, VirtualService], ...],
) -> _HeldHosts:
    ctx, ns = inputs.ctx, inputs.proxy.namespace
    epoch = _routing_epoch(ctx)
    made: list[_VirtualHostUnit] = []
    parts: dict[str, _HostPart] = {}
    owners: dict[str, str] = {}
    shared = False  # a domain claimed twice
    for service in egress.services:
        sp = service.port(port)
        if sp is None or not is_http(sp.protocol):
            parts[service.hostname] = _HostPart(service)
            continue
        all_domains = _domains_of(ctx, service, port, ns)
        domains = [d for d in all_domains if d not in owners]
        if len(domains) != len(all_domains):
            shared = True
        if not domains:
            continue
        owners.update(dict.fromkeys(domains, service.hostname))
        unit = _virtual_host_unit(service, port, domains, egress, inputs, epoch)
        parts[service.hostname] = _HostPart(service, all_domains, unit)
        made.append(unit)
    return _HeldHosts(
        base, ctx.service_index.serial, rules, routing, wildcards, {} if shared else parts, owners,
        tuple(unit.vhost for unit in made), tuple(unit.encoded for unit in made),
    )


def _updated_hosts(
    held: _HeldHosts, port: int, egress: EgressScope, inputs: RouteInputs,
    rules: dict[int, tuple[DestinationRule, str]], routing: dict[str, VirtualService],
) -> _HeldHosts | None:
    """``held`` brought up to this snapshot by the hosts a change can reach, as _all_hosts
    would make it; None when that cannot be told (an index of another lineage, a wildcard
    DestinationRule changed, two services claiming one domain)."""
    ctx = inputs.ctx
    changed = ctx.service_index.endpoint_hosts_changed_since(held.index)  # services too
    if not held.parts or changed is None:
        return None
    rule_hosts = {host for key, (_, host) in held.rules.items() if key not in rules}
    rule_hosts.update(host for key, (_, host) in rules.items() if key not in held.rules)
    if any("*" in host for host in rule_hosts):
        return None
    stale = changed | rule_hosts  # hosts whose service or DestinationRule may differ
    parts, by_host = held.parts, egress.by_host
    again = {s.hostname for s in egress.services if (p := parts.get(s.hostname)) is None or p.service is not s}
    again.update(h for h in stale if h in by_host)
    again.update(h for h in routing.keys() | held.routing.keys() if routing.get(h) is not held.routing.get(h))
    again.update(h for h, reads in held.routed if not stale.isdisjoint(reads))
    gone = parts.keys() - by_host.keys()
    if not again and not gone:  # the same services in the same order: the same virtual hosts
        return replace(held, index=ctx.service_index.serial, rules=rules, routing=routing)
    epoch, ns = _routing_epoch(ctx), inputs.proxy.namespace
    if not gone and all(h not in by_host or (h in parts and parts[h].service is by_host[h]) for h in again):
        # The same services (a VirtualService or a DestinationRule changed): the domains
        # are as they were, and each virtual host built again takes its old one's place.
        updated, vhosts, encoded = dict(parts), list(held.vhosts), list(held.encoded)
        for host in again:
            old = updated.get(host)
            if old is None or old.unit is None:
                continue  # not in this scope, or not an HTTP service on the port
            built = _virtual_host_unit(old.service, port, list(old.domains), egress, inputs, epoch)
            updated[host] = _HostPart(old.service, old.domains, built)
            at = held.positions[host]
            vhosts[at], encoded[at] = built.vhost, built.encoded
        return _HeldHosts(
            held.base, ctx.service_index.serial, rules, routing, held.wildcards, updated, held.owners,
            tuple(vhosts), tuple(encoded),
        )
    updated, owners = dict(parts), dict(held.owners)
    for host in again | gone:
        old = updated.pop(host, None)
        for domain in old.domains if old is not None else ():
            del owners[domain]
    for host in again:
        service = by_host.get(host)
        if service is None:
            continue
        sp = service.port(port)
        if sp is None or not is_http(sp.protocol):
            updated[host] = _HostPart(service)
            continue
        domains = _domains_of(ctx, service, port, ns)
        if any(d in owners for d in domains):
            return None  # a domain claimed twice: who gets it depends on the order of all
        owners.update(dict.fromkeys(domains, host))
        updated[host] = _HostPart(
            service, domains, _virtual_host_unit(service, port, list(domains), egress, inputs, epoch)
        )
    made = [unit for s in egress.services if (unit := updated[s.hostname].unit) is not None]
    return _HeldHosts(
        held.base, ctx.service_index.serial, rules, routing, held.wildcards, updated, owners,
        tuple(unit.vhost for unit in made), tuple(unit.encoded for unit in made),
    )


def _domains_of(ctx: PushContext, service: MeshService, port: int, proxy_ns: str) -> tuple[str, ...]:
    return ctx.units.get(
        ("domains", Ident(service), port, service.namespace == proxy_ns),
        partial(_domains, service, port, proxy_ns, ctx.mesh.domain_suffix),
    )


def _virtual_host_unit(
    service: MeshService, port: int, domains: list[str], egress: EgressScope, inputs: RouteInputs, epoch: Ident
) -> _VirtualHostUnit:
    entry = egress.virtual_service_for(service.hostname)
    if entry is None or not entry.vs.spec.http:
        entry = None
    # While the services and DestinationRules stay (``epoch``), a virtual host is known by
    # its service, VirtualService and proxy alone: a routing change then looks up the full
    # key (_keyed_virtual_host) of the hosts its VirtualService routes alone. Of the proxy,
    # routes read the DestinationRules (by its view: one for most namespaces) and, where a
    # match tests them, its namespace and labels (as _routes_key).
    proxy, ctx = inputs.proxy, inputs.ctx
    reads: tuple[str, ...] = ()
    by_labels = by_namespace = False
    if entry is not None:
        reads, by_labels, by_namespace = ctx.units.get(
            ("routing_facts", Ident(entry.vs)), partial(_routing_facts, entry, ctx.mesh.domain_suffix)
        )
    quick = (
        "virtual_host_in", epoch, Ident(service), port, tuple(domains),
        ident(entry.vs) if entry is not None else None, entry.namespace if entry is not None else None,
        ctx.destination_rule_view(proxy), proxy.namespace if by_namespace else None,
        proxy.labels if by_labels else None, inputs.gateway,
    )
    return inputs.ctx.units.get(quick, partial(_keyed_virtual_host, service, port, domains, entry, inputs, reads))


def _rule_hosts(ctx: PushContext) -> dict[int, tuple[DestinationRule, str]]:
    """id(rule) -> (the rule, held: its id stays its own; its host) of every DestinationRule."""
    return {id(e.rule): (e.rule, e.host) for entries in ctx.routing.destination_rules.values() for e in entries}


def _routing_epoch(ctx: PushContext) -> Ident:
    """A token that stays the same object while the services and DestinationRules do (the
    same objects: the store keeps unchanged ones): what ``_routes_key`` reads besides the
    VirtualService and the proxy. Looked up once per services and routing index (every
    group's route configurations ask)."""
    return ctx.units.get(("routing_epoch_of", Ident(ctx.services), Ident(ctx.routing)), partial(_new_epoch, ctx))


def _new_epoch(ctx: PushContext) -> Ident:
    rules = tuple(Ident(e.rule) for entries in ctx.routing.destination_rules.values() for e in entries)
    return Ident(ctx.units.get(("routing_epoch", Ident(ctx.services), rules), object))


def _keyed_virtual_host(
    service: MeshService, port: int, domains: list[str], entry: VirtualServiceEntry | None, inputs: RouteInputs,
    reads: tuple[str, ...],
) -> _VirtualHostUnit:
    routes_key = _routes_key(service, port, entry, inputs)
    key = ("virtual_host", tuple(domains), routes_key)  # (``reads`` come with the VirtualService in it)
    return inputs.ctx.units.get(key, partial(_virtual_host, service, port, domains, entry, inputs, routes_key, reads))


def _virtual_host(
    service: MeshService, port: int, domains: list[str], entry: VirtualServiceEntry | None, inputs: RouteInputs,
    routes_key: tuple, reads: tuple[str, ...],
) -> _VirtualHostUnit:
    # The routes are a unit of their own: the virtual hosts of one service differ by domains
    # alone between proxy namespaces (the short name in its own), and share their routes.
    routes = inputs.ctx.units.get(("routes", routes_key), partial(_routes, service, port, entry, inputs))
    vhost = rc.VirtualHost(name=names.virtual_host_name(service.hostname, port), domains=domains, routes=routes)
    vhost.include_request_attempt_count = True
    return _VirtualHostUnit(vhost, field_entry(_VIRTUAL_HOSTS_FIELD, vhost), reads)


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
