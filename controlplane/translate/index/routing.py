"""The routing part of the index: VirtualServices, DestinationRules and Sidecars, and the
Kubernetes Gateway API converted as Istio converts it (``gateway_api``: its VirtualServices
join the user-written ones here, its Gateways feed the gateways part).

Hosts are resolved to FQDNs once here, so builders compare names only. Built from those
kinds alone (the conversion also reads Services, ServiceEntries, Namespaces and Secrets:
``GATEWAY_API_READS``, which rebuild this part only while Gateway API objects exist).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from controlplane.model.destination_rule import (
    DestinationRule,
    DestinationRuleSpec,
    PortTrafficPolicy,
    TrafficPolicy,
)
from controlplane.model.gateway_api import GATEWAY_API_KINDS
from controlplane.model.hosts import resolve_short_name, specificity
from controlplane.model.mesh import MeshConfig
from controlplane.model.sidecar import Sidecar
from controlplane.model.virtual_service import VirtualService
from controlplane.translate.gateway_api import EMPTY as NO_GATEWAY_API
from controlplane.translate.gateway_api import INPUT_KINDS as GATEWAY_API_INPUT_KINDS
from controlplane.translate.gateway_api import ConvertedConfig, convert, inputs_from_snapshot
from controlplane.translate.index import services as svcs
from controlplane.translate.index.delegation import merge_delegates
from controlplane.translate.index.rule_merge import merge_namespace_rules
from controlplane.translate.index.service_index import Snapshot

MESH_GATEWAY = "mesh"
ROUTING_KINDS = frozenset({"VirtualService", "DestinationRule", "Sidecar"}) | GATEWAY_API_KINDS
# Other kinds the Gateway API conversion reads (backends, gateway Services, Secrets, ...).
GATEWAY_API_READS = GATEWAY_API_INPUT_KINDS - ROUTING_KINDS


@dataclass(frozen=True, slots=True)
class VirtualServiceEntry:
    vs: VirtualService
    hosts: tuple[str, ...]  # resolved to FQDNs
    gateways: frozenset[str]  # "mesh" or "ns/name"
    export_to: frozenset[str]

    @property
    def namespace(self) -> str:
        return self.vs.meta.namespace


@dataclass(frozen=True, slots=True)
class DestinationRuleEntry:
    rule: DestinationRule
    host: str  # resolved
    export_to: frozenset[str]

    @property
    def namespace(self) -> str:
        return self.rule.meta.namespace


@dataclass(frozen=True, slots=True)
class DestinationRuleIndex:
    """One namespace's DestinationRules: by exact host, and wildcard ones by specificity."""

    exact: Mapping[str, tuple[DestinationRuleEntry, ...]] = field(default_factory=dict)
    wildcards: tuple[DestinationRuleEntry, ...] = ()  # most specific first


@dataclass(frozen=True, slots=True)
class RoutingIndex:
    virtual_services: tuple[VirtualServiceEntry, ...] = ()
    destination_rules: Mapping[str, tuple[DestinationRuleEntry, ...]] = field(default_factory=dict)
    dr_index: Mapping[str, DestinationRuleIndex] = field(default_factory=dict)
    sidecars: Mapping[str, tuple[Sidecar, ...]] = field(default_factory=dict)
    # Does any DestinationRule compare endpoint labels with the proxy's (failoverPriority)?
    uses_failover_priority: bool = False
    # Could any DestinationRule make an assignment read the proxy's locality (outlier
    # detection, Istio's locality failover, or a locality setting)? If not, proxies of every
    # locality share their assignments.
    uses_locality_lb: bool = False
    # Istio Gateways, VirtualServices and status derived from the Gateway API
    gateway_api: ConvertedConfig = NO_GATEWAY_API


def exported_to(export: frozenset[str], owner_ns: str, proxy_ns: str) -> bool:
    if "*" in export:
        return True
    if "~" in export and len(export) == 1:
        return False
    return proxy_ns in export or ("." in export and owner_ns == proxy_ns)


def _policy_levels(spec: DestinationRuleSpec) -> Iterator[TrafficPolicy | PortTrafficPolicy]:
    """Every level of a rule's traffic policy: its own, its subsets', and their port levels."""
    for policy in (spec.traffic_policy, *(s.traffic_policy for s in spec.subsets)):
        if policy is not None:
            yield policy
            yield from policy.port_level_settings


def _has_failover_priority(spec: DestinationRuleSpec) -> bool:
    return any(
        lb is not None and lb.locality_lb_setting is not None and bool(lb.locality_lb_setting.failover_priority)
        for lb in (p.load_balancer for p in _policy_levels(spec))
    )


def _reads_locality(spec: DestinationRuleSpec) -> bool:
    """Can this rule make an assignment depend on the proxy's locality (any level with
    outlier detection, or with a locality setting)? Levels merge, so any one counts."""
    return any(
        p.outlier_detection is not None or (p.load_balancer is not None and p.load_balancer.locality_lb_setting is not None)
        for p in _policy_levels(spec)
    )


def virtual_service_entries(virtual_services: list[VirtualService], mesh: MeshConfig) -> tuple[VirtualServiceEntry, ...]:
    out = []
    for vs in virtual_services:
        ns = vs.meta.namespace
        gateways = frozenset(
            g if g == MESH_GATEWAY or "/" in g else f"{ns}/{g}" for g in (vs.spec.gateways or (MESH_GATEWAY,))
        )
        hosts = tuple(resolve_short_name(h, ns, mesh.domain_suffix) for h in vs.spec.hosts)
        out.append(VirtualServiceEntry(vs, hosts, gateways, svcs.export_set(vs.spec.export_to)))
    return tuple(out)


def _destination_rules(snapshot: Snapshot, converted: ConvertedConfig, mesh: MeshConfig) -> list[DestinationRule]:
    """The user's DestinationRules and the ones Gateway API backend policies make, those of one
    host in one namespace merged as Istio merges them (rule_merge.py)."""
    by_namespace: dict[str, list[DestinationRule]] = {}
    for rule in (*snapshot.of_kind(DestinationRule.KIND), *converted.destination_rules):
        by_namespace.setdefault(rule.meta.namespace, []).append(rule)

    def host_of(rule: DestinationRule) -> str:
        return resolve_short_name(rule.spec.host, rule.meta.namespace, mesh.domain_suffix)

    out: list[DestinationRule] = []
    for rules in by_namespace.values():
        out += rules if len(rules) == 1 else merge_namespace_rules(rules, host_of)
    return out


def build_routing_index(snapshot: Snapshot, mesh: MeshConfig) -> RoutingIndex:
    has_gateway_api = any(snapshot.of_kind(kind) for kind in GATEWAY_API_KINDS)
    converted = convert(inputs_from_snapshot(snapshot, mesh.domain_suffix)) if has_gateway_api else NO_GATEWAY_API
    # Roots come merged with their delegates; delegates are not routed on their own.
    merged = merge_delegates(snapshot.of_kind(VirtualService.KIND), mesh.domain_suffix)
    virtual_services = virtual_service_entries([*merged, *converted.virtual_services], mesh)
    rules: dict[str, list[DestinationRuleEntry]] = {}
    failover_priority = locality_lb = False
    dr: DestinationRule
    for dr in _destination_rules(snapshot, converted, mesh):
        ns = dr.meta.namespace
        entry = DestinationRuleEntry(
            dr, resolve_short_name(dr.spec.host, ns, mesh.domain_suffix), svcs.export_set(dr.spec.export_to)
        )
        rules.setdefault(ns, []).append(entry)
        failover_priority |= _has_failover_priority(dr.spec)
        locality_lb |= _reads_locality(dr.spec)
    dr_index: dict[str, DestinationRuleIndex] = {}
    for ns, entries in rules.items():
        exact: dict[str, list[DestinationRuleEntry]] = {}
        wildcards = []
        for entry in entries:
            if entry.host.startswith("*"):
                wildcards.append(entry)
            else:
                exact.setdefault(entry.host, []).append(entry)
        wildcards.sort(key=lambda e: specificity(e.host))
        dr_index[ns] = DestinationRuleIndex({h: tuple(v) for h, v in exact.items()}, tuple(wildcards))
    sidecars: dict[str, list[Sidecar]] = {}
    for sc in snapshot.of_kind(Sidecar.KIND):
        sidecars.setdefault(sc.meta.namespace, []).append(sc)
    return RoutingIndex(
        virtual_services=virtual_services,
        destination_rules={ns: tuple(v) for ns, v in rules.items()},
        dr_index=dr_index,
        sidecars={ns: tuple(v) for ns, v in sidecars.items()},
        uses_failover_priority=failover_priority,
        uses_locality_lb=locality_lb,
        gateway_api=converted,
    )
