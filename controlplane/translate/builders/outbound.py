"""Outbound clusters and their endpoints for a scope: what sidecars and gateways both send to.

Computed once per shared key per snapshot and memoized in the push context: proxies of one
scope get the same messages (callers treat messages as immutable). Across snapshots, each
service port's clusters and assignments are units keyed by all they read (translate/units.py),
and a scope's sets are kept per service with what each part read (_per_service): the next
snapshot rebuilds the parts of the services whose endpoints, service or DestinationRule
changed, found from the service index's lineage, not by looking every unit up again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from controlplane.model.destination_rule import DestinationRuleSpec, Subset
from controlplane.model.labels import selector_matches
from controlplane.model.locality import Locality
from controlplane.model.mesh import MeshConfig
from controlplane.translate import clusters as cb
from controlplane.translate import destination_policy as dp
from controlplane.translate import names
from controlplane.translate.credentials import credential_resource_names
from controlplane.translate.endpoints import load_assignment
from controlplane.translate.index.context import LabelsKey, PushContext
from controlplane.translate.index.registry import EDS, MeshEndpoint, MeshService, ServicePort
from controlplane.translate.peer_authentication import endpoint_accepts_mtls, inbound_mtls
from controlplane.translate.protocol import is_http
from controlplane.translate.proxy import Proxy
from controlplane.translate.scope import SidecarScope
from controlplane.translate.transport import DISABLE
from controlplane.translate.units import Ident, ident

T = TypeVar("T")
R = TypeVar("R")
ClusterSpec = tuple[MeshService, ServicePort, Subset | None, DestinationRuleSpec | None]
Rule = DestinationRuleSpec | None  # the DestinationRule that applies to a service, if any


def subset_endpoints(eps: tuple[MeshEndpoint, ...], subset: Subset | None) -> tuple[MeshEndpoint, ...]:
    if subset is None:
        return eps
    return tuple(e for e in eps if selector_matches(subset.labels, e.label_map))


def cluster_specs(ctx: PushContext, proxy: Proxy, services: Iterable[MeshService]) -> Iterator[ClusterSpec]:
    """(service, port, subset, rule spec) for every outbound cluster of ``services``, in name order."""
    for service in services:
        rule = _rule(ctx, proxy, service)
        for port in service.ports:
            yield service, port, None, rule
            for subset in rule.subsets if rule is not None else ():
                yield service, port, subset, rule


def _shared_key(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> Hashable:
    """What outbound clusters and endpoints depend on besides the snapshot: the services the
    scope sees (by hostname: one service each in a context), the DestinationRules the proxy
    gets for them (its rule view: the same for every namespace that changes no rule's choice,
    else its namespace and labels) and whether it holds a certificate (auto mTLS). Not the
    proxy's namespace as such: proxies of namespaces that see the same services and rules
    share one build, the warm-up's (Pusher.warm) included."""
    return (scope.services_key, ctx.destination_rule_view(proxy), proxy.has_certificate)


def _scope_inputs(ctx: PushContext, services: Sequence[MeshService]) -> tuple[object, ...]:
    """What a scope's outbound clusters, assignments and credential names read besides the
    slot they are kept in (``_shared_key`` and the proxy's fields there) and the endpoints:
    its services, the DestinationRules (the store keeps an unchanged one as the same object)
    and the PeerAuthentications. Compared with ``==`` (UnitCache.latest), never hashed."""
    rules = tuple(e.rule for entries in ctx.routing.destination_rules.values() for e in entries)
    return (services, rules, Ident(ctx.policies))


@dataclass(frozen=True, slots=True)
class _HeldParts:
    """A scope's per-service outputs (clusters, or assignments) and what they were made
    from, kept for the next snapshot (see _per_service)."""

    inputs: tuple[object, ...]  # _scope_inputs
    index: int  # the serial of the service index they were made from
    parts: tuple[tuple[MeshService, Rule, Any], ...]  # per service of the scope, in order: its rule, its part
    whole: Any  # the parts assembled


def _per_service(
    ctx: PushContext,
    proxy: Proxy,
    slot: Hashable,
    services: Sequence[MeshService],
    build: Callable[[MeshService, Rule], T],
    assemble: Callable[[Iterable[tuple[MeshService, Rule, T]]], R],
) -> R:
    """``assemble`` of ``build`` (service, its DestinationRule) for every service, kept in
    ``slot`` for the next snapshots of the service index's lineage. A part reads its service,
    its rule, its endpoints and the PeerAuthentications alone: with the same services and
    rules, the parts of the hosts whose endpoints changed since (a routing change that comes
    with endpoint changes, as a rewritten file brings) are built again; after services or
    rules changed (a new Service, a DestinationRule), those whose service, rule or endpoints
    differ. Anything else (or an index of another lineage, or an audit) builds every part,
    each a unit: only those whose inputs changed are made anew."""
    inputs, index = _scope_inputs(ctx, services), ctx.service_index
    found = ctx.units.held(slot)
    held = found if isinstance(found, _HeldParts) else None
    changed = None
    if held is not None and held.inputs[-1] == inputs[-1]:  # the same PeerAuthentications
        changed = index.endpoint_hosts_changed_since(held.index)
    if held is None or changed is None:
        parts = tuple((service, rule, build(service, rule)) for service in services
                      for rule in (_rule(ctx, proxy, service),))
        whole = assemble(parts)
    elif held.inputs == inputs:  # the same services and rules: only endpoints changed
        whole, parts = held.whole, held.parts
        if changed and any(service.hostname in changed for service, _, _ in parts):
            parts = tuple(
                (service, rule, build(service, rule) if service.hostname in changed else part)
                for service, rule, part in parts
            )
            whole = assemble(parts)
        elif held.index == index.serial:
            return cast(R, whole)
    else:
        kept = {service.hostname: (service, rule, part) for service, rule, part in held.parts}
        made = []
        for service in services:
            rule = _rule(ctx, proxy, service)
            old = kept.get(service.hostname)
            # (a changed Service is among the hosts changed too)
            if old is not None and old[1] is rule and service.hostname not in changed:
                made.append(old)
            else:
                made.append((service, rule, build(service, rule)))
        parts = tuple(made)
        whole = assemble(parts)
    ctx.units.hold(slot, _HeldParts(inputs, index.serial, parts, whole))
    return cast(R, whole)


def outbound_clusters(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> dict[str, cluster_pb2.Cluster]:
    """Outbound clusters by name (a copy of the memoized dict: callers add their own)."""
    key = _shared_key(ctx, proxy, scope)
    cached = ctx.memo.outbound_clusters.get(key)
    if cached is None:
        cached = ctx.memo.outbound_clusters[key] = _per_service(
            ctx, proxy, ("clusters", key), scope.services, partial(_service_clusters, ctx, proxy), _clusters_by_name
        )
    return dict(cached)


def _service_clusters(
    ctx: PushContext, proxy: Proxy, service: MeshService, rule: Rule
) -> tuple[cluster_pb2.Cluster, ...]:
    auto_mtls = _auto_mtls(ctx, proxy, service)
    out: list[cluster_pb2.Cluster] = []
    for port in service.ports:
        eps = ctx.service_endpoints(service.hostname, port.number)
        # every input outbound_cluster reads (the mesh is the cache's own)
        key = ("clusters", service, port, ident(rule), eps, auto_mtls)
        out.extend(ctx.units.get(key, partial(_port_clusters, ctx.mesh, service, port, rule, eps, auto_mtls)))
    return tuple(out)


def _clusters_by_name(
    parts: Iterable[tuple[MeshService, Rule, tuple[cluster_pb2.Cluster, ...]]],
) -> dict[str, cluster_pb2.Cluster]:
    clusters: dict[str, cluster_pb2.Cluster] = {}
    for _, _, built in parts:
        for c in built:
            clusters.setdefault(c.name, c)
    return clusters


def _rule(ctx: PushContext, proxy: Proxy, service: MeshService) -> Rule:
    entry = ctx.destination_rule(proxy, service.hostname)
    return entry.rule.spec if entry is not None else None


def _port_clusters(
    mesh: MeshConfig,
    service: MeshService,
    port: ServicePort,
    rule: DestinationRuleSpec | None,
    eps: tuple[MeshEndpoint, ...],
    auto_mtls: bool,
) -> tuple[cluster_pb2.Cluster, ...]:
    """The clusters of one service port: the port's own, then one per subset. Every one
    accepts the identities of all the port's endpoints, as Istio's subset clusters do: so an
    endpoint moving between subsets changes no cluster, only assignments."""
    out = []
    service_accounts = _service_accounts(eps, mesh)
    for subset in (None, *(rule.subsets if rule is not None else ())):
        out.append(cb.outbound_cluster(
            service, port, mesh, subset=subset, rule=rule,
            endpoints=list(subset_endpoints(eps, subset)),
            service_accounts=service_accounts, auto_mtls=auto_mtls,
        ))
    return tuple(out)


def outbound_credential_names(ctx: PushContext, proxy: Proxy, scope: SidecarScope) -> tuple[str, ...]:
    """The SDS names that DestinationRule ``credentialName`` makes the scope's clusters ask
    for, sorted (who may be given them: builders/credentials.py)."""
    key = _shared_key(ctx, proxy, scope)
    cached = ctx.memo.credential_names.get(key)
    if cached is None:
        services = scope.services
        cached = ctx.memo.credential_names[key] = ctx.units.latest(
            ("credential_names", key), _scope_inputs(ctx, services), lambda: tuple(sorted({
                name
                for _, port, subset, rule in cluster_specs(ctx, proxy, services) if rule is not None
                for name in credential_resource_names(dp.effective_policy(rule, port.number, subset).tls)
            }))
        )
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
    key = (_shared_key(ctx, proxy, scope), *_assignment_inputs(ctx, proxy), hosts)
    cached = ctx.memo.assignments.get(key)
    if cached is None:
        build = partial(_service_assignments, ctx, proxy)
        if hosts is None:
            cached = _per_service(ctx, proxy, ("assignments", key), scope.services, build, _assignments_by_name)
        else:
            cached = _assignments_by_name(
                (s, rule, build(s, rule)) for s in scope.services_of(hosts) for rule in (_rule(ctx, proxy, s),)
            )
        ctx.memo.assignments[key] = cached
    return cached


def _assignment_inputs(ctx: PushContext, proxy: Proxy) -> tuple[Locality | None, LabelsKey]:
    """What of the proxy its assignments may read: its locality where a DestinationRule can
    switch locality load balancing on, its labels where one has failoverPriority (which
    compares endpoint labels with them). Else none: proxies of every locality share them."""
    return (
        proxy.locality if ctx.routing.uses_locality_lb else None,
        proxy.labels if ctx.uses_failover_priority else None,
    )


def _service_assignments(
    ctx: PushContext, proxy: Proxy, service: MeshService, rule: Rule
) -> tuple[tuple[str, endpoint_pb2.ClusterLoadAssignment], ...]:
    if service.resolution != EDS:
        return ()
    locality, labels = _assignment_inputs(ctx, proxy)
    out: list[tuple[str, endpoint_pb2.ClusterLoadAssignment]] = []
    for port in service.ports:
        eps = ctx.service_endpoints(service.hostname, port.number)
        # every input _port_assignments reads (PeerAuthentications: the policy index)
        key = ("assignments", service, port, ident(rule), eps, locality, labels, Ident(ctx.policies))
        out.extend(ctx.units.get(key, partial(_port_assignments, ctx, locality, labels, service, port, rule, eps)))
    return tuple(out)


def _assignments_by_name(
    parts: Iterable[tuple[MeshService, Rule, tuple[tuple[str, endpoint_pb2.ClusterLoadAssignment], ...]]],
) -> tuple[endpoint_pb2.ClusterLoadAssignment, ...]:
    """Sorted by cluster name; a name given twice keeps the first."""
    out: dict[str, endpoint_pb2.ClusterLoadAssignment] = {}
    for _, _, pairs in parts:
        for name, cla in pairs:
            out.setdefault(name, cla)
    return tuple(out[k] for k in sorted(out))


def _port_assignments(
    ctx: PushContext,
    proxy_locality: Locality | None,
    proxy_labels: LabelsKey,
    service: MeshService,
    port: ServicePort,
    rule: DestinationRuleSpec | None,
    eps: tuple[MeshEndpoint, ...],
) -> tuple[tuple[str, endpoint_pb2.ClusterLoadAssignment], ...]:
    """The assignments of one EDS service port's clusters (its own, then its subsets')."""
    out = []
    for subset in (None, *(rule.subsets if rule is not None else ())):
        policy = dp.effective_policy(rule, port.number, subset)
        lb = policy.load_balancer
        if lb is not None and lb.simple == "PASSTHROUGH":
            continue
        name = names.outbound_cluster(service.hostname, port.number, subset.name if subset is not None else "")
        setting = lb.locality_lb_setting if lb is not None else None
        # Failover priorities need outlier detection (Envoy never leaves a priority without
        # it); distribute weights do not (Istio's ApplyLocalityLoadBalancer).
        distributes = setting is not None and bool(setting.distribute) and setting.enabled is not False
        locality = proxy_locality if policy.locality_lb_enabled or distributes else None
        out.append((name, load_assignment(
            name, list(subset_endpoints(eps, subset)), proxy_locality=locality,
            locality_setting=setting,
            proxy_labels=dict(proxy_labels) if proxy_labels is not None else None,
            accepts_mtls=lambda ep: endpoint_accepts_mtls(ctx, ep),
            workload_facts=not is_http(port.protocol),  # no headers tell a TCP client who answered
        )))
    return tuple(out)
