"""What one proxy may see: Sidecar egress hosts, exportTo, and the mesh gateway filter.

A scope depends only on the proxy's namespace and the Sidecar resource that applies,
so it is computed once per (namespace, Sidecar) per snapshot and shared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from controlplane.model.base import ResourceKey
from controlplane.model.common import Port
from controlplane.model.hosts import (
    host_matches,
    hosts_overlap,
    resolve_short_name,
    specificity,
)
from controlplane.model.mesh import ALLOW_ANY
from controlplane.model.sidecar import IstioEgressListener, IstioIngressListener, Sidecar
from controlplane.model.virtual_service import HTTPRoute, TCPRoute, TLSRoute
from controlplane.translate.index.context import (
    MESH_GATEWAY,
    PushContext,
    VirtualServiceEntry,
    exported_to,
)
from controlplane.translate.index.registry import MeshService
from controlplane.translate.proxy import Proxy
from controlplane.translate.units import Ident


@dataclass(frozen=True, slots=True)
class EgressScope:
    """One Sidecar egress listener (or the implicit catch-all)."""

    port: Port | None  # None: all service ports
    bind: str
    capture_none: bool
    services: tuple[MeshService, ...]
    virtual_services: tuple[VirtualServiceEntry, ...]

    vs_exact: dict[str, VirtualServiceEntry] = field(default_factory=dict)
    vs_wildcard: tuple[tuple[str, VirtualServiceEntry], ...] = ()
    # ``services`` by hostname: an endpoint change finds its hosts without a scan
    by_host: Mapping[str, MeshService] = field(default_factory=dict)

    def virtual_service_for(self, hostname: str) -> VirtualServiceEntry | None:
        """The VirtualService routing ``hostname``: exact host first, then the most specific
        wildcard; among equals the first by key (Istio takes the oldest)."""
        found = self.vs_exact.get(hostname)
        if found is not None:
            return found
        for pattern, entry in self.vs_wildcard:
            if host_matches(pattern, hostname):
                return entry
        return None


@dataclass(frozen=True, slots=True)
class SidecarScope:
    sidecar: Sidecar | None
    egress: tuple[EgressScope, ...]
    ingress: tuple[IstioIngressListener, ...]
    outbound_policy: str
    # (namespace, Sidecar key): equal keys, equal scope
    key: tuple[str, ResourceKey | None] | None = None
    # Every egress listener's services, one per hostname, sorted by it (made once: each
    # builder reads them).
    services: tuple[MeshService, ...] = field(init=False, compare=False, repr=False)
    # The hostnames of ``services``. A push context has one service per hostname, so scopes
    # with equal keys hold the very same services, whatever their namespaces: what is built
    # from the services alone (outbound clusters, assignments) is shared by them.
    services_key: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.egress) == 1:  # already one per hostname, sorted (_egress_scope)
            services = self.egress[0].services
        else:
            seen: dict[str, MeshService] = {}
            for e in self.egress:
                for s in e.services:
                    seen.setdefault(s.hostname, s)
            services = tuple(sorted(seen.values(), key=lambda s: s.hostname))
        object.__setattr__(self, "services", services)
        object.__setattr__(self, "services_key", tuple(s.hostname for s in services))

    @property
    def routes_depend_on_labels(self) -> bool:
        """Do any visible VirtualService matches test sourceLabels (so routes differ per workload)?"""
        for e in self.egress:
            for entry in e.virtual_services:
                spec = entry.vs.spec
                routes: tuple[HTTPRoute | TCPRoute | TLSRoute, ...] = (*spec.http, *spec.tcp, *spec.tls)
                for route in routes:
                    if any(m.source_labels for m in route.match):
                        return True
        return False

    def services_of(self, hosts: Iterable[str]) -> list[MeshService]:
        """``services`` of ``hosts`` alone, at the cost of ``hosts`` (not of the scope)."""
        seen: dict[str, MeshService] = {}
        for host in hosts:
            for e in self.egress:
                service = e.by_host.get(host)
                if service is not None:
                    seen[host] = service
                    break
        return [seen[host] for host in sorted(seen)]


def _parse_egress_host(text: str, proxy_ns: str) -> tuple[str, str]:
    ns, sep, host = text.partition("/")
    if not sep:
        ns, host = "*", text
    if ns == ".":
        ns = proxy_ns
    return ns, host


def _ns_ok(pattern_ns: str, ns: str) -> bool:
    return pattern_ns == "*" or pattern_ns == ns


def _egress_scope(ctx: PushContext, proxy_ns: str, listener: IstioEgressListener | None) -> EgressScope:
    parsed = (_parse_egress_host(h, proxy_ns) for h in (listener.hosts if listener else ("*/*",)))
    host_patterns = tuple((ns, h) for ns, h in parsed if ns != "~")
    vses = tuple(
        e for e in ctx.virtual_services
        if MESH_GATEWAY in e.gateways
        and exported_to(e.export_to, e.namespace, proxy_ns)
        and any(_ns_ok(ns, e.namespace) and any(hosts_overlap(h, vh) for vh in e.hosts) for ns, h in host_patterns)
    )
    # Units (translate/units.py): the services part outlives a routing change, which leaves
    # the services (the very same tuple) as they were; a copy, as the routed-to join below.
    # Where every service is exported to all, the namespace matters only through the egress
    # hosts (``./``, already resolved): namespaces without a Sidecar share one lookup.
    export_ns = None if _all_exported_to_all(ctx) else proxy_ns
    wanted = dict(ctx.units.get(
        ("scope_services", Ident(ctx.services), export_ns, host_patterns),
        partial(_visible_services, ctx.services, proxy_ns, host_patterns),
    ))
    # Services a visible VirtualService routes to come along, so no route lacks its cluster.
    for e in vses:
        hosts = ctx.units.get(
            ("scope_destination_hosts", Ident(e.vs), e.namespace),
            partial(_destination_hosts, e, ctx.mesh.domain_suffix),
        )
        for host in hosts:
            target = ctx.service_by_host.get(host)
            if target is None or host in wanted:
                continue
            if exported_to(target.export_to, target.namespace, proxy_ns):
                wanted[host] = target
    port = listener.port if listener is not None else None
    capture_none = listener is not None and listener.capture_mode == "NONE"
    exact: dict[str, VirtualServiceEntry] = {}
    wildcard: list[tuple[str, VirtualServiceEntry]] = []
    for e in vses:  # already sorted by key: setdefault keeps the first
        for h in e.hosts:
            if h.startswith("*"):
                wildcard.append((h, e))
            else:
                exact.setdefault(h, e)
    wildcard.sort(key=lambda pe: specificity(pe[0]))  # stable: key order among equals
    return EgressScope(
        port=port if port is not None and port.number else None,
        bind=listener.bind if listener else "",
        capture_none=capture_none,
        services=tuple(sorted(wanted.values(), key=lambda s: s.hostname)),
        virtual_services=vses,
        vs_exact=exact,
        vs_wildcard=tuple(wildcard),
        by_host=wanted,
    )


def _all_exported_to_all(ctx: PushContext) -> bool:
    """Is every service exported to every namespace (the default)?"""
    return ctx.units.get(
        ("services_exported_to_all", Ident(ctx.services)),
        lambda: all("*" in s.export_to for s in ctx.services),
    )


def _visible_services(
    services: tuple[MeshService, ...], proxy_ns: str, host_patterns: tuple[tuple[str, str], ...]
) -> dict[str, MeshService]:
    """The services exported to ``proxy_ns`` that the egress hosts name, by hostname."""
    wanted: dict[str, MeshService] = {}
    for s in services:
        if not exported_to(s.export_to, s.namespace, proxy_ns):
            continue
        if any(_ns_ok(ns, s.namespace) and host_matches(h, s.hostname) for ns, h in host_patterns):
            wanted[s.hostname] = s
    return wanted


def _destination_hosts(entry: VirtualServiceEntry, domain_suffix: str) -> frozenset[str]:
    ns = entry.namespace
    spec = entry.vs.spec
    out: set[str] = set()
    for http in spec.http:
        dests = [rd.destination for rd in http.route]
        dests += [m.destination for m in http.mirrors]
        if http.mirror is not None:
            dests.append(http.mirror)
        out.update(resolve_short_name(d.host, ns, domain_suffix) for d in dests if d is not None and d.host)
    l4_routes: tuple[TCPRoute | TLSRoute, ...] = (*spec.tcp, *spec.tls)
    for route in l4_routes:
        out.update(
            resolve_short_name(rd.destination.host, ns, domain_suffix)
            for rd in route.route if rd.destination is not None
        )
    return frozenset(out)


def sidecar_scope(ctx: PushContext, proxy: Proxy) -> SidecarScope:
    """A sidecar's scope: from the Sidecar resource that applies to it, if any."""
    return _scope(ctx, proxy.namespace, ctx.sidecar_for(proxy))


def gateway_scope(ctx: PushContext, proxy: Proxy) -> SidecarScope:
    """A gateway's: every service exported to its namespace (Istio's default scope for
    gateways; Sidecar resources do not apply to them)."""
    return _scope(ctx, proxy.namespace, None)


def _scope(ctx: PushContext, namespace: str, sidecar: Sidecar | None) -> SidecarScope:
    cache_key = (namespace, sidecar.key if sidecar is not None else None)
    cached = ctx.memo.scopes.get(cache_key)
    if cached is not None:
        return cached
    policy = ctx.mesh.outbound_traffic_policy
    if sidecar is None:
        scope = SidecarScope(None, (_egress_scope(ctx, namespace, None),), (), policy, cache_key)
    else:
        spec = sidecar.spec
        listeners = spec.egress or (None,)
        if spec.outbound_traffic_policy is not None:
            policy = spec.outbound_traffic_policy.mode
        scope = SidecarScope(
            sidecar,
            tuple(_egress_scope(ctx, namespace, e) for e in listeners),
            tuple(spec.ingress),
            policy or ALLOW_ANY,
            cache_key,
        )
    ctx.memo.scopes[cache_key] = scope
    return scope
