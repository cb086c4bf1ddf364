"""Entry points: translate(push context, proxy) -> xDS resources by type URL; endpoints();
group_key() for proxies that share one result."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from google.protobuf.message import Message

from controlplane.translate import clusters as cb
from controlplane.translate import destination_policy as dp
from controlplane.translate import names, telemetry
from controlplane.translate.endpoints import load_assignment
from controlplane.translate.listeners import (
    InboundPort,
    OutboundResult,
    bound_inbound,
    outbound_listeners,
    virtual_inbound,
    virtual_outbound,
)
from controlplane.model.mesh import MeshConfig
from controlplane.translate.peer_authentication import endpoint_accepts_mtls, inbound_mtls
from controlplane.translate.protocol import is_http2, parse_protocol
from controlplane.translate.proxy import INTERCEPTION_NONE, Proxy
from controlplane.translate.index.context import PushContext, build_push_context
from controlplane.translate.index.registry import EDS, MeshEndpoint, labels_match
from controlplane.translate.scope import SidecarScope, sidecar_scope
from controlplane.translate.transport import DISABLE, PERMISSIVE

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def push_context(snapshot: Any, mesh: MeshConfig) -> PushContext:
    """Build once per snapshot and share among all proxies."""
    return build_push_context(snapshot, mesh)


def _ctx(inputs: Any, mesh: MeshConfig | None) -> PushContext:
    if isinstance(inputs, PushContext):
        return inputs
    return build_push_context(inputs, mesh or MeshConfig())


def group_key(inputs: Any, proxy: Proxy) -> Hashable:
    """Proxies with equal keys get identical output from translate() and endpoints()."""
    ctx = _ctx(inputs, None)
    scope = sidecar_scope(ctx, proxy)
    binds_ips = proxy.interception_mode == INTERCEPTION_NONE or bool(scope.ingress)
    return (
        proxy.kind,
        proxy.namespace,
        proxy.labels,
        proxy.service_account,
        proxy.interception_mode,
        proxy.locality,
        proxy.ips if binds_ips else (),
        proxy.pod_name if _named_target_ports(ctx, proxy) else "",
        proxy.has_certificate,
    )


def _named_target_ports(ctx: PushContext, proxy: Proxy) -> bool:
    """Named targetPorts are resolved on the proxy's own Pod, so the Pod matters then."""
    return any(
        isinstance(p.target_port, str) for s in ctx.services_selecting(proxy.namespace, proxy.label_map) for p in s.ports
    )


# --- clusters and endpoints --------------------------------------------------------------------


def _subset_endpoints(eps: list[MeshEndpoint], subset: Any) -> list[MeshEndpoint]:
    if subset is None:
        return eps
    return [e for e in eps if labels_match(dict(subset.labels), e.label_map)]


def _outbound_cluster_specs(ctx: PushContext, proxy: Proxy, scope: SidecarScope):
    """(service, port, subset, rule spec) for every outbound cluster, in name order."""
    for service in scope.services:
        entry = ctx.destination_rule(proxy, service.hostname)
        rule = entry.rule.spec if entry is not None else None
        for port in service.ports:
            yield service, port, None, rule
            for subset in rule.subsets if rule is not None else ():
                yield service, port, subset, rule


def _shared_key(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> Hashable:
    """What outbound clusters and endpoints depend on besides the snapshot: the scope, and
    the proxy's labels only where a DestinationRule in its namespace selects workloads."""
    selective = ctx.has_selective_rule(proxy.namespace)
    sidecar = scope.sidecar.key if scope.sidecar is not None else None
    return (proxy.namespace, sidecar, proxy.labels if selective else None, proxy.has_certificate)


def _outbound_clusters(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> dict[str, Message]:
    """Outbound clusters by name, computed once per shared key per snapshot (messages are
    treated as immutable by every caller)."""
    key = ("clusters", _shared_key(ctx, proxy, scope))
    cached = ctx.scope_cache.get(key)
    if cached is not None:
        return cached
    clusters: dict[str, Message] = {}
    for service, port, subset, rule in _outbound_cluster_specs(ctx, proxy, scope):
        eps = ctx.service_endpoints(service.hostname, port.number)
        selected = _subset_endpoints(eps, subset)
        c = cb.outbound_cluster(
            service, port, ctx.mesh, subset=subset, rule=rule, endpoints=selected,
            service_accounts=_service_accounts(selected, ctx.mesh),
            auto_mtls=_auto_mtls(ctx, proxy, service),
        )
        clusters.setdefault(c.name, c)
    ctx.scope_cache[key] = clusters
    return clusters


def _auto_mtls(ctx: PushContext, proxy: Proxy, service: Any) -> bool:
    """Istio's auto mTLS for a cluster without DestinationRule TLS: on in the mesh config, for
    a proxy that holds a certificate, to a service inside the mesh whose namespace (or mesh)
    policy does not DISABLE mTLS. Endpoints then choose by their ``tlsMode`` metadata."""
    if not (ctx.mesh.enable_auto_mtls and proxy.has_certificate) or service.mesh_external:
        return False
    return inbound_mtls(ctx, service.namespace, None).mode != DISABLE


def _service_accounts(eps: list[MeshEndpoint], mesh: MeshConfig) -> tuple[str, ...]:
    return tuple(sorted({
        f"spiffe://{mesh.trust_domain}/ns/{e.namespace}/sa/{e.service_account}"
        for e in eps if e.service_account
    }))


def _inbound_ports(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> list[InboundPort]:
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


def translate(inputs: Any, proxy: Proxy, mesh: MeshConfig | None = None) -> dict[str, list[Message]]:
    """Clusters, endpoints, listeners and routes for one proxy, each list sorted by name.

    ``inputs`` is a PushContext (preferred: build it once per snapshot with
    push_context()) or a store Snapshot.
    """
    ctx = _ctx(inputs, mesh)
    scope = sidecar_scope(ctx, proxy)
    clusters = dict(_outbound_clusters(ctx, proxy, scope))
    inbound = _inbound_ports(ctx, proxy, scope)
    for ip in inbound:
        c = cb.inbound_cluster(ip.port, ip.app_address, ip.app_port, ctx.mesh, http2=is_http2(ip.protocol))
        clusters.setdefault(c.name, c)
    for c in (cb.passthrough_cluster(ctx.mesh), cb.blackhole_cluster(ctx.mesh)):
        clusters[c.name] = c
    if proxy.interception_mode != INTERCEPTION_NONE:
        c = cb.passthrough_cluster(ctx.mesh, names.INBOUND_PASSTHROUGH_CLUSTER)
        clusters[c.name] = c

    out = OutboundResult()
    outbound_listeners(ctx, proxy, scope, out)
    mtls = inbound_mtls(ctx, proxy.namespace, proxy.label_map)

    def mode_for(port: int) -> str:
        # Without a certificate a proxy cannot terminate mTLS: PERMISSIVE is plaintext then,
        # while STRICT stays mTLS-only (it fails closed).
        mode = mtls.mode_for(port)
        return DISABLE if mode == PERMISSIVE and not proxy.has_certificate else mode

    captured = [p for p in inbound if not p.bind]
    for p in inbound:
        if p.bind:
            lst = bound_inbound(p, mode_for(p.port), ctx.mesh.trust_domain)
            out.listeners.setdefault(lst.name, lst)
    if proxy.interception_mode != INTERCEPTION_NONE:
        vo = virtual_outbound(ctx, scope.outbound_policy)
        workload_mode = DISABLE if mtls.mode == PERMISSIVE and not proxy.has_certificate else mtls.mode
        vi = virtual_inbound(ctx, captured, mode_for, workload_mode)
        out.listeners[vo.name] = vo
        out.listeners[vi.name] = vi
    # Access logs, tracing and tracer clusters (Telemetry API and mesh defaults).
    tel = telemetry.proxy_telemetry(ctx, proxy)
    telemetry.decorate_listeners(out.listeners, tel)
    for c in telemetry.collector_clusters(ctx, tel, clusters):
        clusters.setdefault(c.name, c)
    return {
        CLUSTER_TYPE: [clusters[k] for k in sorted(clusters)],
        ENDPOINT_TYPE: endpoints(ctx, proxy),
        LISTENER_TYPE: [out.listeners[k] for k in sorted(out.listeners)],
        ROUTE_TYPE: [out.routes[k] for k in sorted(out.routes)],
    }


def endpoints(inputs: Any, proxy: Proxy, mesh: MeshConfig | None = None) -> list[Message]:
    """ClusterLoadAssignments for every EDS cluster of ``proxy``, sorted by cluster name.

    The EDS-only path: after an endpoint-only change the runtime calls this alone; cluster,
    listener and route output cannot have changed.
    """
    ctx = _ctx(inputs, mesh)
    scope = sidecar_scope(ctx, proxy)
    # failoverPriority may compare endpoint labels with the proxy's own.
    labels = proxy.labels if ctx.uses_failover_priority else None
    key = ("endpoints", _shared_key(ctx, proxy, scope), proxy.locality, labels)
    cached = ctx.scope_cache.get(key)
    if cached is None:
        cached = ctx.scope_cache[key] = _endpoints(ctx, proxy, scope)
    return list(cached)


def _endpoints(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> list[Message]:
    out: dict[str, Message] = {}
    for service, port, subset, rule in _outbound_cluster_specs(ctx, proxy, scope):
        if service.resolution != EDS:
            continue
        policy = dp.effective_policy(rule, port.number, subset)
        if getattr(policy.load_balancer, "simple", None) == "PASSTHROUGH":
            continue
        name = names.outbound_cluster(service.hostname, port.number, getattr(subset, "name", "") if subset else "")
        eps = _subset_endpoints(ctx.service_endpoints(service.hostname, port.number), subset)
        locality = proxy.locality if policy.locality_lb_enabled else None
        setting = getattr(policy.load_balancer, "locality_lb_setting", None)
        out.setdefault(name, load_assignment(
            name, eps, proxy_locality=locality, locality_setting=setting, proxy_labels=proxy.label_map,
            accepts_mtls=lambda ep: endpoint_accepts_mtls(ctx, ep),
        ))
    return [out[k] for k in sorted(out)]
