"""VirtualService tcp and tls routes -> tcp_proxy destinations and SNI filter chains."""

from __future__ import annotations

from controlplane.model.hosts import resolve_short_name
from controlplane.model.labels import selector_matches
from controlplane.model.virtual_service import (
    L4MatchAttributes,
    TCPRoute,
    TLSMatchAttributes,
    TLSRoute,
)
from controlplane.translate import names
from controlplane.translate.http_route_match import names_gateway
from controlplane.translate.index.context import MESH_GATEWAY, PushContext, VirtualServiceEntry


def _applies(
    match: L4MatchAttributes | TLSMatchAttributes, port: int, labels: dict[str, str], namespace: str,
    gateway: str, vs_namespace: str,
) -> bool:
    if match.port and match.port != port:
        return False
    if not selector_matches(match.source_labels, labels):
        return False
    if match.source_namespace and match.source_namespace != namespace:
        return False
    return not match.gateways or names_gateway(match.gateways, gateway, vs_namespace)


def _weighted(
    route: TCPRoute | TLSRoute, entry: VirtualServiceEntry, ctx: PushContext, port: int
) -> list[tuple[str, int]]:
    out = []
    for rd in route.route:
        d = rd.destination
        if d is None:
            continue
        host = resolve_short_name(d.host, entry.namespace, ctx.mesh.domain_suffix)
        dport = d.port.number if d.port is not None and d.port.number else port
        svc = ctx.service_by_host.get(host)
        if (d.port is None or not d.port.number) and svc is not None and len(svc.ports) == 1:
            dport = svc.ports[0].number
        out.append((names.outbound_cluster(host, dport, d.subset), rd.weight or (100 if len(route.route) == 1 else 0)))
    return out


def tcp_destinations(
    entry: VirtualServiceEntry | None, ctx: PushContext, port: int, labels: dict[str, str], namespace: str,
    gateway: str = MESH_GATEWAY,
) -> list[tuple[str, int]] | None:
    """Weighted clusters of the first tcp route that applies (on ``gateway``), or None."""
    if entry is None:
        return None
    for route in entry.vs.spec.tcp:
        if not route.match or any(_applies(m, port, labels, namespace, gateway, entry.namespace) for m in route.match):
            dests = _weighted(route, entry, ctx, port)
            if dests:
                return dests
    return None


def tls_chains(
    entry: VirtualServiceEntry | None, ctx: PushContext, port: int, labels: dict[str, str], namespace: str,
    gateway: str = MESH_GATEWAY,
) -> list[tuple[tuple[str, ...], list[tuple[str, int]]]]:
    """(SNI hosts, weighted clusters) per tls route match that applies (on ``gateway``)."""
    if entry is None:
        return []
    out = []
    for route in entry.vs.spec.tls:
        for m in route.match:
            if _applies(m, port, labels, namespace, gateway, entry.namespace) and m.sni_hosts:
                sni = tuple(resolve_short_name(h, entry.namespace, ctx.mesh.domain_suffix) for h in m.sni_hosts)
                dests = _weighted(route, entry, ctx, port)
                if dests:
                    out.append((sni, dests))
    return out
