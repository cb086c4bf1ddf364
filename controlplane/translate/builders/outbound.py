"""Outbound clusters and their endpoints for a scope: what sidecars and gateways both send to.

Computed once per shared key per snapshot and memoized in the push context: proxies of one
scope get the same messages (callers treat messages as immutable).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterator

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from controlplane.model.destination_rule import DestinationRuleSpec, Subset
from controlplane.model.labels import selector_matches
from controlplane.model.mesh import MeshConfig
from controlplane.translate import clusters as cb
from controlplane.translate import destination_policy as dp
from controlplane.translate import names
from controlplane.translate.credentials import credential_resource_names
from controlplane.translate.endpoints import load_assignment
from controlplane.translate.index.context import PushContext
from controlplane.translate.index.registry import EDS, MeshEndpoint, MeshService, ServicePort
from controlplane.translate.peer_authentication import endpoint_accepts_mtls, inbound_mtls
from controlplane.translate.protocol import is_http
from controlplane.translate.proxy import Proxy
from controlplane.translate.scope import SidecarScope
from controlplane.translate.transport import DISABLE

ClusterSpec = tuple[MeshService, ServicePort, Subset | None, DestinationRuleSpec | None]


def subset_endpoints(eps: tuple[MeshEndpoint, ...], subset: Subset | None) -> tuple[MeshEndpoint, ...]:
    if subset is None:
        return eps
    return tuple(e for e in eps if selector_matches(subset.labels, e.label_map))


def cluster_specs(
    ctx: PushContext, proxy: Proxy, scope: SidecarScope, hosts: Collection[str] | None = None
) -> Iterator[ClusterSpec]:
    """(service, port, subset, rule spec) for every outbound cluster (of ``hosts`` alone when
    given), in name order."""
    for service in scope.services if hosts is None else _scope_services(scope, hosts):
        entry = ctx.destination_rule(proxy, service.hostname)
        rule = entry.rule.spec if entry is not None else None
        for port in service.ports:
            yield service, port, None, rule
            for subset in rule.subsets if rule is not None else ():
                yield service, port, subset, rule


def _scope_services(scope: SidecarScope, hosts: Collection[str]) -> list[MeshService]:
    """SidecarScope.services, of ``hosts`` alone (without sorting every service)."""
    seen: dict[str, MeshService] = {}
    for egress in scope.egress:
        for service in egress.services:
            if service.hostname in hosts:
                seen.setdefault(service.hostname, service)
    return [seen[host] for host in sorted(seen)]


def _shared_key(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> Hashable:
    """What outbound clusters and endpoints depend on besides the snapshot: the scope, and
    the proxy's labels only where a DestinationRule in its namespace selects workloads."""
    selective = ctx.has_selective_rule(proxy.namespace)
    return (scope.key, proxy.labels if selective else None, proxy.has_certificate)


def outbound_clusters(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> dict[str, cluster_pb2.Cluster]:
    """Outbound clusters by name (a copy of the memoized dict: callers add their own)."""
    key = _shared_key(ctx, proxy, scope)
    cached = ctx.memo.outbound_clusters.get(key)
    if cached is None:
        cached = ctx.memo.outbound_clusters[key] = _build_clusters(ctx, proxy, scope)
    return dict(cached)


def _build_clusters(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> dict[str, cluster_pb2.Cluster]:
    clusters: dict[str, cluster_pb2.Cluster] = {}
    for service, port, subset, rule in cluster_specs(ctx, proxy, scope):
        selected = subset_endpoints(ctx.service_endpoints(service.hostname, port.number), subset)
        c = cb.outbound_cluster(
            service, port, ctx.mesh, subset=subset, rule=rule, endpoints=list(selected),
            service_accounts=_service_accounts(selected, ctx.mesh),
            auto_mtls=_auto_mtls(ctx, proxy, service),
        )
        clusters.setdefault(c.name, c)
    return clusters


def outbound_credential_names(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> tuple[str, ...]:
    """The SDS names that DestinationRule ``credentialName`` makes the scope's clusters ask
    for, sorted (who may be given them: builders/credentials.py)."""
    key = _shared_key(ctx, proxy, scope)
    cached = ctx.memo.credential_names.get(key)
    if cached is None:
        cached = ctx.memo.credential_names[key] = tuple(sorted({
            name
            for _, port, subset, rule in cluster_specs(ctx, proxy, scope) if rule is not None
            for name in credential_resource_names(dp.effective_policy(rule, port.number, subset).tls)
        }))
    return cached


def _auto_mtls(ctx: PushContext, proxy: Proxy, service: MeshService) -> bool:
    """Istio's auto mTLS for a cluster without DestinationRule TLS: on in the mesh config, for
    a proxy that holds a certificate, to a service inside the mesh whose namespace (or mesh)
    policy does not DISABLE mTLS. Endpoints then choose by their ``tlsMode`` metadata."""
    if not (ctx.mesh.enable_auto_mtls and proxy.has_certificate) or service.mesh_external:
        return False
    return inbound_mtls(ctx, service.namespace, None).mode != DISABLE


def _service_accounts(eps: tuple[MeshEndpoint, ...], mesh: MeshConfig) -> tuple[str, ...]:
    return tuple(sorted({
        f"spiffe://{mesh.trust_domain}/ns/{e.namespace}/sa/{e.service_account}"
        for e in eps if e.service_account
    }))


def outbound_assignments(
    ctx: PushContext, proxy: Proxy, scope: SidecarScope, hosts: frozenset[str] | None = None
) -> tuple[endpoint_pb2.ClusterLoadAssignment, ...]:
    """ClusterLoadAssignments of every EDS cluster of the scope (of ``hosts`` alone when
    given: after their endpoints changed), sorted by cluster name."""
    # failoverPriority may compare endpoint labels with the proxy's own.
    labels = proxy.labels if ctx.uses_failover_priority else None
    key = (_shared_key(ctx, proxy, scope), proxy.locality, labels, hosts)
    cached = ctx.memo.assignments.get(key)
    if cached is None:
        cached = ctx.memo.assignments[key] = _build_assignments(ctx, proxy, scope, hosts)
    return cached


def _build_assignments(
    ctx: PushContext, proxy: Proxy, scope: SidecarScope, hosts: frozenset[str] | None
) -> tuple[endpoint_pb2.ClusterLoadAssignment, ...]:
    out: dict[str, endpoint_pb2.ClusterLoadAssignment] = {}
    for service, port, subset, rule in cluster_specs(ctx, proxy, scope, hosts):
        if service.resolution != EDS:
            continue
        policy = dp.effective_policy(rule, port.number, subset)
        lb = policy.load_balancer
        if lb is not None and lb.simple == "PASSTHROUGH":
            continue
        name = names.outbound_cluster(service.hostname, port.number, subset.name if subset is not None else "")
        eps = subset_endpoints(ctx.service_endpoints(service.hostname, port.number), subset)
        setting = lb.locality_lb_setting if lb is not None else None
        # Failover priorities need outlier detection (Envoy never leaves a priority without
        # it); distribute weights do not (Istio's ApplyLocalityLoadBalancer).
        distributes = setting is not None and bool(setting.distribute) and setting.enabled is not False
        locality = proxy.locality if policy.locality_lb_enabled or distributes else None
        out.setdefault(name, load_assignment(
            name, list(eps), proxy_locality=locality,
            locality_setting=setting,
            proxy_labels=proxy.label_map,
            accepts_mtls=lambda ep: endpoint_accepts_mtls(ctx, ep),
            workload_facts=not is_http(port.protocol),  # no headers tell a TCP client who answered
        ))
    return tuple(out[k] for k in sorted(out))
