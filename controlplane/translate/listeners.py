"""Listeners: virtualOutbound/virtualInbound (iptables capture) and explicitly bound ones.

With capture (REDIRECT), per-port outbound listeners do not bind (``bind_to_port``
false); virtualOutbound hands connections to them by original destination. Without
capture (Sidecar ``captureMode: NONE``, or a proxy whose INTERCEPTION_MODE is NONE),
every listener binds its own address:port, as a mesh on one machine needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from controlplane.model.mesh import ALLOW_ANY
from controlplane.translate import names
from controlplane.translate.filters import (
    FilterSite,
    filter_access_logs,
    http_filter_chain,
    network_filter_chain,
)
from controlplane.translate.filters import network as flt
from controlplane.translate.filters.base import INBOUND, OUTBOUND, ExtensionConfigs
from controlplane.translate.index.context import PushContext
from controlplane.translate.index.registry import WILDCARD_ADDRESS, MeshService, ServicePort
from controlplane.translate.pb import duration, socket_address
from controlplane.translate.protocol import is_http, is_http2, is_tls, parse_protocol
from controlplane.translate.proxy import INTERCEPTION_NONE, Proxy
from controlplane.translate.routes import RouteInputs, outbound_route_config
from controlplane.translate.scope import EgressScope, SidecarScope
from controlplane.translate.tcp_routes import tcp_destinations, tls_chains
from controlplane.translate.transport import (
    DISABLE,
    PERMISSIVE,
    RAW_TRANSPORT,
    STRICT,
    TLS_TRANSPORT,
    forward_client_cert,
    inbound_transport_socket,
)

Listener: TypeAlias = listener_pb2.Listener
LOCALHOST = "127.0.0.1"


@dataclass
class OutboundResult:
    listeners: dict[str, Listener] = field(default_factory=dict)
    routes: dict[str, route_pb2.RouteConfiguration] = field(default_factory=dict)
    # Filter configs the chains name and ECDS serves (inbound listeners add theirs too).
    extensions: ExtensionConfigs = field(default_factory=ExtensionConfigs)


def _listener(name: str, address: str, port: int, bind: bool) -> Listener:
    lst = Listener(name=name, address=socket_address(address, port))
    if not bind:
        lst.bind_to_port.value = False
    lst.traffic_direction = 2  # OUTBOUND (core.v3.TrafficDirection)
    return lst


def _fallback_cluster(policy: str) -> str:
    return names.PASSTHROUGH_CLUSTER if policy == ALLOW_ANY else names.BLACKHOLE_CLUSTER


def _explicit(proxy: Proxy, egress: EgressScope) -> bool:
    return proxy.interception_mode == INTERCEPTION_NONE or egress.capture_none or bool(egress.bind)


def _egress_bind(proxy: Proxy, egress: EgressScope) -> str:
    if egress.bind:
        return egress.bind
    return LOCALHOST if _explicit(proxy, egress) else WILDCARD_ADDRESS


def _covered_ports(egress: EgressScope) -> list[tuple[MeshService, ServicePort]]:
    """(service, port) pairs an egress listener serves: all ports, or only its own."""
    want = egress.port.number if egress.port is not None else None
    return [(s, p) for s in egress.services for p in s.ports if want is None or p.number == want]


def outbound_listeners(
    ctx: PushContext, proxy: Proxy, scope: SidecarScope, result: OutboundResult
) -> None:
    """Per-port HTTP listeners (RDS named by port) and per-address TCP/TLS listeners,
    for every egress listener of the scope; the first listener for a name wins."""
    inputs = RouteInputs(ctx, proxy, scope.outbound_policy)
    labels = proxy.label_map
    for egress in scope.egress:
        explicit = _explicit(proxy, egress)
        bind_addr = _egress_bind(proxy, egress)
        pairs = _covered_ports(egress)
        http_ports = sorted({p.number for _, p in pairs if is_http(p.protocol)})
        if egress.port is not None and is_http(parse_protocol(egress.port.protocol)):
            http_ports = [egress.port.number]
        for number in http_ports:
            name = names.listener_name(bind_addr, number)
            if name in result.listeners:
                continue
            route_name = str(number) if not egress.bind else f"{egress.bind}_{number}"
            lst = _listener(name, bind_addr, number, explicit)
            site = FilterSite(ctx, proxy, OUTBOUND, number, http=True, extensions=result.extensions)
            lst.filter_chains.add().filters.extend([
                *network_filter_chain(site),
                flt.http_connection_manager(
                    f"outbound_{bind_addr}_{number}", http_filter_chain(site), rds_name=route_name,
                    path_normalization=ctx.mesh.path_normalization, access_logs=filter_access_logs(site),
                ),
            ])
            result.listeners[name] = lst
            if route_name not in result.routes:
                result.routes[route_name] = _shared_route_config(ctx, proxy, scope, egress, route_name, number, inputs)
        mine: dict[str, Listener] = {}  # TCP/TLS listeners made by this egress listener
        for service, sp in pairs:
            if is_http(sp.protocol) or (sp.number in http_ports and egress.port is not None):
                continue
            address = bind_addr if explicit else service.address
            name = names.listener_name(address, sp.number)
            lst = mine.get(name)
            if lst is None:
                if name in result.listeners:
                    continue  # an HTTP listener or an earlier egress listener owns it
                lst = mine[name] = result.listeners[name] = _listener(name, address, sp.number, explicit)
            entry = egress.virtual_service_for(service.hostname)
            cluster = names.outbound_cluster(service.hostname, sp.number)
            site = FilterSite(ctx, proxy, OUTBOUND, sp.number, extensions=result.extensions)
            before = network_filter_chain(site)
            logs = filter_access_logs(site)
            if is_tls(sp.protocol):
                _add_sni_chains(
                    lst, service.hostname, cluster, tls_chains(entry, ctx, sp.number, labels, proxy.namespace), before,
                    logs,
                )
            elif not lst.filter_chains and not lst.listener_filters:
                dests = tcp_destinations(entry, ctx, sp.number, labels, proxy.namespace)
                lst.filter_chains.add().filters.extend(
                    [*before, flt.tcp_proxy(cluster, cluster=cluster, weighted=dests, access_logs=logs)]
                )
        fallback = _fallback_cluster(scope.outbound_policy)
        for lst in mine.values():
            if lst.listener_filters:  # SNI listener: unknown server names fall through
                lst.default_filter_chain.filters.append(flt.tcp_proxy(fallback, cluster=fallback))


def _shared_route_config(
    ctx: PushContext, proxy: Proxy, scope: SidecarScope, egress: EgressScope, name: str, port: int,
    inputs: RouteInputs,
) -> route_pb2.RouteConfiguration:
    """Route configs are shared by proxies of one scope unless sourceLabels make them differ."""
    by_labels = scope.routes_depend_on_labels or ctx.has_selective_rule(proxy.namespace)
    labels = proxy.labels if by_labels else None
    key = (scope.key, scope.egress.index(egress), name, labels)
    cached = ctx.memo.route_configs.get(key)
    if cached is None:
        cached = ctx.memo.route_configs[key] = outbound_route_config(name, port, egress, inputs, slot=key)
    return cached


def _add_sni_chains(
    lst: Listener,
    hostname: str,
    cluster: str,
    routes: list[tuple[tuple[str, ...], list[tuple[str, int]]]],
    before: list[lc.Filter],
    logs: list[accesslog_pb2.AccessLog],
) -> None:
    """One filter chain per VS tls match (server_names), then one for the host itself."""
    if lst.filter_chains and not lst.listener_filters:
        return  # a plain TCP service took this address:port first
    if not lst.listener_filters:
        lst.listener_filters.append(flt.tls_inspector())
    taken = {s for fc in lst.filter_chains for s in fc.filter_chain_match.server_names}
    for sni, dests in routes:
        fresh = tuple(h for h in sni if h not in taken)
        if not fresh:
            continue
        fc = lst.filter_chains.add()
        fc.filter_chain_match.server_names.extend(fresh)
        fc.filter_chain_match.transport_protocol = "tls"
        fc.filters.extend([*before, flt.tcp_proxy(dests[0][0], weighted=dests, access_logs=logs)])
        taken.update(fresh)
    if hostname not in taken:
        fc = lst.filter_chains.add()
        fc.filter_chain_match.server_names.append(hostname)
        fc.filter_chain_match.transport_protocol = "tls"
        fc.filters.extend([*before, flt.tcp_proxy(cluster, cluster=cluster, access_logs=logs)])


def virtual_outbound(ctx: PushContext, policy: str) -> Listener:
    lst = Listener(
        name=names.VIRTUAL_OUTBOUND,
        address=socket_address(WILDCARD_ADDRESS, ctx.mesh.virtual_outbound_port),
    )
    lst.use_original_dst.value = True
    lst.traffic_direction = 2
    cluster = _fallback_cluster(policy)
    fc = lst.filter_chains.add(name=cluster)
    fc.filters.append(flt.tcp_proxy(cluster, cluster=cluster))
    return lst


# --- inbound --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundPort:
    """One port the workload serves: listen on ``port``, forward to cluster ``inbound|port||``."""

    port: int
    protocol: str
    bind: str  # "" when captured by virtualInbound
    app_address: str
    app_port: int


def inbound_route_config(port: int) -> route_pb2.RouteConfiguration:
    cluster = names.inbound_cluster(port)
    action = rc.RouteAction(cluster=cluster)
    action.timeout.CopyFrom(duration(0))
    route = rc.Route(name="default", match=rc.RouteMatch(prefix="/"), route=action)
    vh = rc.VirtualHost(name=f"inbound|http|{port}", domains=["*"], routes=[route])
    return route_pb2.RouteConfiguration(name=cluster, virtual_hosts=[vh], validate_clusters=None)


def _inbound_filters(
    ctx: PushContext, proxy: Proxy, ip: InboundPort, extensions: ExtensionConfigs
) -> list[lc.Filter]:
    cluster = names.inbound_cluster(ip.port)
    site = FilterSite(ctx, proxy, INBOUND, ip.port, http=is_http(ip.protocol), extensions=extensions)
    before = network_filter_chain(site)
    logs = filter_access_logs(site)
    if is_http(ip.protocol):
        hcm = flt.http_connection_manager(
            f"inbound_0.0.0.0_{ip.port}", http_filter_chain(site),
            route_config=inbound_route_config(ip.port), http2=is_http2(ip.protocol),
            path_normalization=ctx.mesh.path_normalization, access_logs=logs,
        )
        return [*before, forward_client_cert(hcm)]
    return [*before, flt.tcp_proxy(cluster, cluster=cluster, access_logs=logs)]


def _add_mode_chains(
    lst: Listener, name: str, filters: list[lc.Filter], mode: str, trust_domain: str, http: bool,
    destination_port: int | None = None,
) -> None:
    """The filter chains of one inbound port in a PeerAuthentication mode: STRICT one mTLS
    chain (a plaintext connection matches nothing and is closed), PERMISSIVE an mTLS chain
    and a plaintext one told apart by tls_inspector, DISABLE one plaintext chain."""
    variants: list[tuple[str, str]]  # (chain name suffix, transport protocol)
    if mode == STRICT:
        variants = [("", TLS_TRANSPORT)]
    elif mode == PERMISSIVE:
        variants = [("-mtls", TLS_TRANSPORT), ("-plaintext", RAW_TRANSPORT)]
    else:
        variants = [("", "")]
    for suffix, transport in variants:
        chain = lst.filter_chains.add(name=name + suffix)
        if destination_port is not None:
            chain.filter_chain_match.destination_port.value = destination_port
        if transport:
            chain.filter_chain_match.transport_protocol = transport
        chain.filters.extend(filters)
        if transport == TLS_TRANSPORT:
            chain.transport_socket.CopyFrom(inbound_transport_socket(mode, trust_domain=trust_domain, http=http))
    if mode != DISABLE and not any(f.name == flt.TLS_INSPECTOR for f in lst.listener_filters):
        lst.listener_filters.append(flt.tls_inspector())
        # A server-first protocol sends nothing for tls_inspector to read: after the listener
        # filter timeout the connection goes on as plaintext instead of being closed.
        lst.continue_on_listener_filters_timeout = True


def virtual_inbound(
    ctx: PushContext, proxy: Proxy, ports: list[InboundPort], mode_for: Callable[[int], str], workload_mode: str,
    *, extensions: ExtensionConfigs,
) -> Listener:
    """15006 for captured inbound traffic: a chain set per port (by original destination
    port) in its mTLS mode; other ports pass through, mTLS-only when the workload is STRICT.
    Filter configs served over ECDS go to ``extensions``."""
    lst = Listener(
        name=names.VIRTUAL_INBOUND,
        address=socket_address(WILDCARD_ADDRESS, ctx.mesh.virtual_inbound_port),
    )
    lst.traffic_direction = 1  # INBOUND
    lst.listener_filters.append(flt.original_dst())
    trust_domain = ctx.mesh.trust_domain
    for ip in ports:
        _add_mode_chains(
            lst, names.inbound_cluster(ip.port), _inbound_filters(ctx, proxy, ip, extensions), mode_for(ip.port),
            trust_domain,
            is_http(ip.protocol), destination_port=ip.port,
        )
    # Ports no service declares: TCP, policies still apply (Istio's passthrough chains).
    site = FilterSite(ctx, proxy, INBOUND, 0, extensions=extensions)
    passthrough = [
        *network_filter_chain(site),
        flt.tcp_proxy(
            names.INBOUND_PASSTHROUGH_CLUSTER, cluster=names.INBOUND_PASSTHROUGH_CLUSTER,
            access_logs=filter_access_logs(site),
        ),
    ]
    if workload_mode == STRICT:
        _add_mode_chains(lst, names.INBOUND_PASSTHROUGH_CLUSTER, passthrough, STRICT, trust_domain, http=False)
    else:
        lst.default_filter_chain.name = names.INBOUND_PASSTHROUGH_CLUSTER
        lst.default_filter_chain.filters.extend(passthrough)
    return lst


def bound_inbound(
    ctx: PushContext, proxy: Proxy, ip: InboundPort, tls_mode: str, *, extensions: ExtensionConfigs
) -> Listener:
    lst = Listener(name=names.listener_name(ip.bind, ip.port), address=socket_address(ip.bind, ip.port))
    lst.traffic_direction = 1
    _add_mode_chains(
        lst, names.inbound_cluster(ip.port), _inbound_filters(ctx, proxy, ip, extensions), tls_mode,
        ctx.mesh.trust_domain,
        is_http(ip.protocol),
    )
    return lst
