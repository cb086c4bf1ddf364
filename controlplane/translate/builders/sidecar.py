"""The sidecar builder: a sidecar proxy's clusters, listeners and routes.

Outbound: a cluster per service port (and subset) in the proxy's scope, and listeners that
route by Host. Inbound: a cluster and a listener (or a virtualInbound filter chain) per port
the workload serves, in its PeerAuthentication mode.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from controlplane.model.destination_rule import ConnectionPoolSettings
from controlplane.model.mesh import MeshConfig
from controlplane.translate import clusters as cb
from controlplane.translate import names
from controlplane.translate.builders.credentials import proxy_credentials
from controlplane.translate.builders.outbound import (
    outbound_assignments,
    outbound_clusters,
    outbound_credential_names,
)
from controlplane.translate.builders.output import Builder, ProxyConfig, add_telemetry_and_callouts
from controlplane.translate.index.context import PushContext
from controlplane.translate.listeners import (
    InboundPort,
    OutboundResult,
    bound_inbound,
    outbound_listeners,
    virtual_inbound,
    virtual_outbound,
)
from controlplane.translate.peer_authentication import inbound_mtls
from controlplane.translate.protocol import is_http, is_http2, parse_protocol
from controlplane.translate.proxy import INTERCEPTION_NONE, Proxy
from controlplane.translate.scope import SidecarScope, sidecar_scope
from controlplane.translate.transport import DISABLE, PERMISSIVE


def inbound_ports(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> list[InboundPort]:
    """The ports the workload serves: the Sidecar's ingress listeners, else the ports of the
    services selecting it (targetPort, named ones resolved on the proxy's own Pod)."""
    ports: dict[int, InboundPort] = {}
    explicit_proxy = proxy.interception_mode == INTERCEPTION_NONE
    default_bind = proxy.ips[0] if proxy.ips else "0.0.0.0"
    for ing in scope.ingress:
        if ing.port is None:
            continue
        address, app_port = _parse_default_endpoint(ing.default_endpoint, ctx.mesh, ing.port.number)
        explicit = explicit_proxy or ing.capture_mode == "NONE" or bool(ing.bind)
        ports.setdefault(ing.port.number, InboundPort(
            port=ing.port.number,
            protocol=parse_protocol(ing.port.protocol),
            bind=(ing.bind or default_bind) if explicit else "",
            app_address=address if address != "0.0.0.0" else default_bind,
            app_port=app_port,
        ))
    if scope.ingress or explicit_proxy:
        return sorted(ports.values(), key=lambda p: p.port)
    for service in ctx.services_selecting(proxy.namespace, proxy.label_map):
        for sp in service.ports:
            target = sp.target_port if isinstance(sp.target_port, int) else None
            if target is None and isinstance(sp.target_port, str):
                target = ctx.named_container_port(proxy, sp.target_port)
            target = target or sp.number
            ports.setdefault(target, InboundPort(target, sp.protocol, "", ctx.mesh.inbound_app_address, target))
    return sorted(ports.values(), key=lambda p: p.port)


def _parse_default_endpoint(text: str, mesh: MeshConfig, port: int) -> tuple[str, int]:
    if not text:
        return mesh.inbound_app_address, port
    host, _, p = text.rpartition(":")
    return (host or mesh.inbound_app_address), int(p) if p.isdigit() else port


def _inbound_pool(scope: SidecarScope, port: int) -> ConnectionPoolSettings | None:
    """Istio's InboundConnectionPoolForPort: the ingress listener's for the port, else the
    Sidecar's ``inboundConnectionPool``."""
    for ing in scope.ingress:
        if ing.port is not None and ing.port.number == port and ing.connection_pool is not None:
            return ing.connection_pool
    return scope.sidecar.spec.inbound_connection_pool if scope.sidecar is not None else None


def build_sidecar(ctx: PushContext, proxy: Proxy) -> ProxyConfig:
    scope = sidecar_scope(ctx, proxy)
    clusters = outbound_clusters(ctx, proxy, scope)
    inbound = inbound_ports(ctx, proxy, scope)
    for ip in inbound:
        c = cb.inbound_cluster(ip.port, ip.app_address, ip.app_port, ctx.mesh, http2=is_http2(ip.protocol),
                               pool=_inbound_pool(scope, ip.port), http=is_http(ip.protocol))
        clusters.setdefault(c.name, c)
    extra: list[cluster_pb2.Cluster] = [cb.passthrough_cluster(ctx.mesh), cb.blackhole_cluster(ctx.mesh)]
    if proxy.interception_mode != INTERCEPTION_NONE:
        extra.append(cb.passthrough_cluster(ctx.mesh, names.INBOUND_PASSTHROUGH_CLUSTER))
    for c in extra:
        clusters[c.name] = c

    out = OutboundResult()
    outbound_listeners(ctx, proxy, scope, out)
    mtls = inbound_mtls(ctx, proxy.namespace, proxy.label_map)

    def mode_for(port: int) -> str:
        # Without a certificate a proxy cannot terminate mTLS: PERMISSIVE is plaintext then,
        # while STRICT stays mTLS-only (it fails closed).
        mode = mtls.mode_for(port)
        return DISABLE if mode == PERMISSIVE and not proxy.has_certificate else mode

    for p in inbound:
        if p.bind:
            lst = bound_inbound(ctx, proxy, p, mode_for(p.port), extensions=out.extensions)
            out.listeners.setdefault(lst.name, lst)
    if proxy.interception_mode != INTERCEPTION_NONE:
        captured = [p for p in inbound if not p.bind]
        workload_mode = DISABLE if mtls.mode == PERMISSIVE and not proxy.has_certificate else mtls.mode
        for lst in (
            virtual_outbound(ctx, scope.outbound_policy),
            virtual_inbound(ctx, proxy, captured, mode_for, workload_mode, extensions=out.extensions),
        ):
            out.listeners[lst.name] = lst
    add_telemetry_and_callouts(ctx, proxy, out.listeners, clusters)
    return ProxyConfig(
        clusters=clusters,
        assignments=outbound_assignments(ctx, proxy, scope),
        listeners=out.listeners,
        routes=out.routes,
        secrets=proxy_credentials(ctx, proxy, outbound_credential_names(ctx, proxy, scope)),
        extension_configs=out.extensions.resources(),
    )


def sidecar_assignments(
    ctx: PushContext, proxy: Proxy, hosts: frozenset[str] | None = None
) -> tuple[endpoint_pb2.ClusterLoadAssignment, ...]:
    return outbound_assignments(ctx, proxy, sidecar_scope(ctx, proxy), hosts)


SIDECAR_BUILDER = Builder(build=build_sidecar, assignments=sidecar_assignments)
