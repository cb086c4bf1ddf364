"""The push context: everything derived from one input snapshot that every proxy shares
(Istio's PushContext), in parts that are built, and rebuilt, apart:

- ``service_index``: services and their endpoints (ServiceIndex), rebuilt alone after
  an endpoint change;
- ``routing``: VirtualServices, DestinationRules, Sidecars (RoutingIndex);
- ``policies``: PeerAuthentication, Telemetry, ... (PolicyIndex);
- ``credentials``: Secrets, for DestinationRule ``credentialName`` (CredentialIndex);
- ``gateways``: Istio Gateways and the VirtualServices bound to them (GatewayIndex);
- ``envoy_filters``: EnvoyFilters, their patch values parsed (EnvoyFilterIndex);
- ``jwks``: the keys fetched for RequestAuthentication ``jwksUri`` (JwksIndex), rebuilt
  alone after a key rotation.

``memo`` holds outputs that proxies of one scope share within this snapshot (sidecar scopes,
outbound clusters, route configurations, ...); it starts empty with every new context.
``units`` holds translation units keyed by all their inputs (translate/units.py): an updated
context keeps it, so a routing change rebuilds only the units whose inputs changed.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2

from controlplane.model.gateway import Gateway
from controlplane.model.hosts import host_matches
from controlplane.model.labels import selector_labels, selector_matches
from controlplane.model.mesh import MeshConfig
from controlplane.model.sidecar import Sidecar
from controlplane.translate.index.credentials import (
    CREDENTIAL_KINDS,
    CredentialIndex,
    build_credential_index,
)
from controlplane.translate.index.envoy_filters import (
    ENVOY_FILTER_KINDS,
    EnvoyFilterIndex,
    build_envoy_filter_index,
)
from controlplane.translate.index.gateways import GATEWAY_KINDS, GatewayIndex, build_gateway_index
from controlplane.translate.index.jwks import JWKS_KINDS, JwksIndex, build_jwks_index
from controlplane.translate.index.policies import POLICY_KINDS, PolicyIndex, build_policy_index
from controlplane.translate.index.registry import MeshEndpoint, MeshService
from controlplane.translate.index.routing import (
    GATEWAY_API_READS,
    MESH_GATEWAY,
    ROUTING_KINDS,
    DestinationRuleEntry,
    RoutingIndex,
    VirtualServiceEntry,
    build_routing_index,
    exported_to,
)
from controlplane.translate.index.service_index import (
    ENDPOINT_SOURCE_KINDS,
    SERVICE_KINDS,
    UPDATABLE_KINDS,
    ServiceIndex,
    Snapshot,
    build_service_index,
    update_service_index,
)
from controlplane.translate.proxy import Proxy
from controlplane.translate.units import UnitCache

if TYPE_CHECKING:
    from controlplane.translate.authz.builder import WorkloadRbac
    from controlplane.translate.authz.ext_authz import CustomAuthz, ResolvedProvider
    from controlplane.translate.istio_metrics.plan import ProxyMetricsPlan
    from controlplane.translate.peer_authentication import InboundMtls
    from controlplane.translate.scope import SidecarScope
    from controlplane.translate.telemetry import ProxyTelemetry

__all__ = [
    "MESH_GATEWAY",
    "DestinationRuleEntry",
    "Memo",
    "PushContext",
    "VirtualServiceEntry",
    "build_push_context",
    "exported_to",
    "update_push_context",
    "update_push_context_endpoints",
]

# Every kind some part of the index reads.
INDEXED_KINDS = (
    SERVICE_KINDS | ROUTING_KINDS | POLICY_KINDS | CREDENTIAL_KINDS | JWKS_KINDS | GATEWAY_KINDS
    | ENVOY_FILTER_KINDS
)

# Labels as a hashable key part (sorted pairs); None where labels do not matter.
LabelsKey = tuple[tuple[str, str], ...] | None
# PushContext.destination_rule_view of the proxies of every namespace that changes no rule's choice
PLAIN_RULE_VIEW = "plain"


@dataclass
class Memo:
    """Outputs shared by proxies within one snapshot, each keyed by what it depends on."""

    scopes: dict[tuple[str, Hashable], SidecarScope] = field(default_factory=dict)
    # namespace -> whether a DestinationRule there selects workloads (has_selective_rule)
    selective_rules: dict[str, bool] = field(default_factory=dict)
    outbound_clusters: dict[Hashable, dict[str, cluster_pb2.Cluster]] = field(default_factory=dict)
    assignments: dict[Hashable, tuple[endpoint_pb2.ClusterLoadAssignment, ...]] = field(default_factory=dict)
    route_configs: dict[Hashable, route_pb2.RouteConfiguration] = field(default_factory=dict)
    # a VirtualService's http routes on one Gateway and port (routers)
    gateway_routes: dict[Hashable, tuple[route_components_pb2.Route, ...]] = field(default_factory=dict)
    inbound_mtls: dict[tuple[str, LabelsKey], InboundMtls] = field(default_factory=dict)
    telemetry: dict[Hashable, ProxyTelemetry | None] = field(default_factory=dict)
    # (namespace, labels that matter) -> the Istio metrics each direction reports (istio_metrics)
    metrics: dict[Hashable, ProxyMetricsPlan] = field(default_factory=dict)
    # Clusters to extension providers (tracers, authorizers) a proxy has none for.
    provider_clusters: dict[str, cluster_pb2.Cluster] = field(default_factory=dict)
    credential_names: dict[Hashable, tuple[str, ...]] = field(default_factory=dict)
    # (the proxy's rule view, host) -> the DestinationRule that applies, or None
    destination_rules: dict[tuple[Hashable, str], DestinationRuleEntry | None] = field(default_factory=dict)
    # namespace -> whether its proxies see the DestinationRules as a namespace holding none does
    plain_rule_namespaces: dict[str, bool] = field(default_factory=dict)
    rules_exported_to_all: bool | None = None
    # (namespace, labels that matter, clear route cache) -> the jwt_authn config, or None
    jwt_authn: dict[tuple[str, LabelsKey, bool], jwt_pb2.JwtAuthentication | None] = field(default_factory=dict)
    # (namespace, labels that matter, TCP chain?) -> the RBAC of AuthorizationPolicies, or None
    authz: dict[tuple[str, LabelsKey, bool], WorkloadRbac | None] = field(default_factory=dict)
    # AuthorizationPolicy CUSTOM: the mesh config's ext_authz providers (resolved once), the
    # CUSTOM part of a chain by (namespace, labels that matter, TCP chain?), plain clusters by name
    ext_authz_providers: dict[str, ResolvedProvider] | None = None
    ext_authz: dict[tuple[str, LabelsKey, bool], CustomAuthz | None] = field(default_factory=dict)


@dataclass
class PushContext:
    mesh: MeshConfig
    service_index: ServiceIndex
    routing: RoutingIndex
    policies: PolicyIndex
    credentials: CredentialIndex = field(default_factory=CredentialIndex)
    jwks: JwksIndex = field(default_factory=JwksIndex)
    envoy_filters: EnvoyFilterIndex = field(default_factory=EnvoyFilterIndex)
    gateways: GatewayIndex = field(default_factory=GatewayIndex)
    memo: Memo = field(default_factory=Memo)
    units: UnitCache = field(default_factory=UnitCache)  # kept by update_push_context*

    # --- full pushes --------------------------------------------------------------------------
    def begin_full_push(self) -> None:
        """Before every group is translated again: EnvoyFilter patches are found afresh, and
        an audit push (translate/units.py) looks every unit up, so none may come from this
        snapshot's memo."""
        self.envoy_filters.forget_found()
        if self.units.audit:
            self.memo = Memo()

    def end_full_push(self) -> None:
        """Every group was translated: the unit cache may drop what none of them used."""
        self.units.end_push()

    # --- services ---------------------------------------------------------------------------
    @property
    def services(self) -> tuple[MeshService, ...]:
        """Every service, sorted by hostname."""
        return self.service_index.services

    @property
    def service_by_host(self) -> Mapping[str, MeshService]:
        return self.service_index.by_host

    @property
    def endpoints(self) -> Mapping[tuple[str, int], tuple[MeshEndpoint, ...]]:
        return self.service_index.endpoints

    def service_endpoints(self, host: str, port: int) -> tuple[MeshEndpoint, ...]:
        return self.service_index.service_endpoints(host, port)

    def services_selecting(self, namespace: str, labels: Mapping[str, str]) -> list[MeshService]:
        return self.service_index.selecting(namespace, labels)

    def named_container_port(self, proxy: Proxy, name: str) -> int | None:
        """A named targetPort resolved on the proxy's own Pod."""
        return self.service_index.named_container_port(proxy.namespace, proxy.pod_name, name)

    # --- routing ----------------------------------------------------------------------------
    @property
    def virtual_services(self) -> tuple[VirtualServiceEntry, ...]:
        return self.routing.virtual_services

    @property
    def uses_failover_priority(self) -> bool:
        return self.routing.uses_failover_priority

    def destination_rule(self, proxy: Proxy, host: str) -> DestinationRuleEntry | None:
        """Istio's order: the proxy's namespace, then the service's, then the root namespace;
        within one, an exact host before the most specific wildcard."""
        key = (self.destination_rule_view(proxy), host)  # all that _find_destination_rule reads
        memo = self.memo.destination_rules
        if key in memo:
            return memo[key]
        found = memo[key] = self._find_destination_rule(proxy, host)
        return found

    def destination_rule_view(self, proxy: Proxy) -> Hashable:
        """Equal for proxies that ``destination_rule`` answers alike for every host: the same
        token for every namespace whose proxies see the rules as one holding none does (so a
        new namespace's first translation finds the units another's built), else the
        proxy's namespace and labels (all that the rules' order and selectors read)."""
        plain = self.memo.plain_rule_namespaces.get(proxy.namespace)
        if plain is None:
            plain = self.memo.plain_rule_namespaces[proxy.namespace] = self._plain_rule_namespace(proxy.namespace)
        return PLAIN_RULE_VIEW if plain else (proxy.namespace, proxy.labels)

    def _plain_rule_namespace(self, namespace: str) -> bool:
        """Does a proxy in ``namespace`` get, for every host, the rule a proxy in a namespace
        holding none gets? Yes when every rule of the mesh is exported to all (what is visible
        is the same everywhere) and each of its own rules is for an exact host of one of its
        own services, selecting no workload: its rules come first only for its own services,
        where the service's namespace puts them anyway (the root namespace's included)."""
        if self.memo.rules_exported_to_all is None:
            self.memo.rules_exported_to_all = all(
                "*" in e.export_to for entries in self.routing.destination_rules.values() for e in entries
            )
        if not self.memo.rules_exported_to_all:
            return False
        index = self.routing.dr_index.get(namespace)
        if index is None:
            return True
        if index.wildcards:
            return False
        for host, entries in index.exact.items():
            service = self.service_index.by_host.get(host)
            if service is None or service.namespace != namespace:
                return False
            if any(selector_labels(e.rule.spec.workload_selector) for e in entries):
                return False
        return True

    def _find_destination_rule(self, proxy: Proxy, host: str) -> DestinationRuleEntry | None:
        service = self.service_index.by_host.get(host)
        order = [proxy.namespace]
        if service is not None and service.namespace not in order:
            order.append(service.namespace)
        if self.mesh.root_namespace not in order:
            order.append(self.mesh.root_namespace)
        for ns in order:
            index = self.routing.dr_index.get(ns)
            if index is None:
                continue
            for entry in index.exact.get(host, ()):
                if self._dr_applies(entry, ns, proxy):
                    return entry
            for entry in index.wildcards:
                if host_matches(entry.host, host) and self._dr_applies(entry, ns, proxy):
                    return entry
        return None

    def has_selective_rule(self, namespace: str) -> bool:
        """Does a DestinationRule in ``namespace`` select workloads (so results differ by labels)?"""
        found = self.memo.selective_rules.get(namespace)
        if found is None:
            found = self.memo.selective_rules[namespace] = any(
                selector_labels(e.rule.spec.workload_selector)
                for e in self.routing.destination_rules.get(namespace, ())
            )
        return found

    @staticmethod
    def _dr_applies(entry: DestinationRuleEntry, ns: str, proxy: Proxy) -> bool:
        if not exported_to(entry.export_to, ns, proxy.namespace):
            return False
        selector = selector_labels(entry.rule.spec.workload_selector)
        if selector:
            return ns == proxy.namespace and selector_matches(selector, proxy.label_map)
        return True

    def sidecar_for(self, proxy: Proxy) -> Sidecar | None:
        """The Sidecar resource that applies: one selecting the workload, else the
        namespace default, else the root namespace default."""
        labels = proxy.label_map
        candidates = self.routing.sidecars.get(proxy.namespace, ())
        for sc in candidates:
            selector = selector_labels(sc.spec.workload_selector)
            if selector and selector_matches(selector, labels):
                return sc
        for sc in (*candidates, *self.routing.sidecars.get(self.mesh.root_namespace, ())):
            if not selector_labels(sc.spec.workload_selector):
                return sc
        return None


def build_push_context(snapshot: Snapshot, mesh: MeshConfig) -> PushContext:
    routing = build_routing_index(snapshot, mesh)
    return PushContext(
        mesh=mesh,
        service_index=build_service_index(snapshot, mesh),
        routing=routing,
        policies=build_policy_index(snapshot),
        credentials=build_credential_index(snapshot),
        jwks=build_jwks_index(snapshot),
        envoy_filters=build_envoy_filter_index(snapshot),
        gateways=_gateway_index(snapshot, routing),
    )


def _gateway_index(snapshot: Snapshot, routing: RoutingIndex) -> GatewayIndex:
    # Istio Gateways written by users and those converted from the Gateway API (routing part)
    gateways = [*snapshot.of_kind(Gateway.KIND), *routing.gateway_api.gateways]
    return build_gateway_index(gateways, routing.virtual_services)


def update_push_context(
    previous: PushContext,
    snapshot: Snapshot,
    changed_kinds: Collection[str],
    endpoint_changes: Iterable[tuple[object | None, object | None]] | None = None,
) -> PushContext:
    """The push context of ``snapshot``, reusing the parts of ``previous`` that no kind in
    ``changed_kinds`` feeds. The memo always starts empty: its outputs mix every part.
    ``endpoint_changes``: the (old, new) EndpointSlices, Endpoints, Pods and Services among the
    changes (UPDATABLE_KINDS); when those are all the services part sees changed, it updates
    the services and endpoints they feed alone (a routing change that came with endpoint
    changes, as a rewritten file brings; a new Service)."""
    changed = frozenset(changed_kinds)
    if changed - INDEXED_KINDS:  # a kind no part declares: rebuild all rather than guess
        return build_push_context(snapshot, previous.mesh)
    mesh = previous.mesh
    # The Gateway API conversion (in the routing part) also reads Services, Secrets, ...
    gateway_api_inputs = bool(changed & GATEWAY_API_READS) and bool(previous.routing.gateway_api.statuses)
    routing_changed = bool(changed & ROUTING_KINDS) or gateway_api_inputs
    routing = build_routing_index(snapshot, mesh) if routing_changed else previous.routing
    service_index = previous.service_index
    if changed & SERVICE_KINDS:
        if endpoint_changes is not None and changed & SERVICE_KINDS <= UPDATABLE_KINDS:
            service_index = update_service_index(service_index, snapshot, mesh, endpoint_changes).index
        else:
            service_index = build_service_index(snapshot, mesh)
    return replace(
        previous,
        service_index=service_index,
        routing=routing,
        gateways=(
            _gateway_index(snapshot, routing) if changed & GATEWAY_KINDS or routing_changed else previous.gateways
        ),
        policies=build_policy_index(snapshot) if changed & POLICY_KINDS else previous.policies,
        credentials=build_credential_index(snapshot) if changed & CREDENTIAL_KINDS else previous.credentials,
        jwks=build_jwks_index(snapshot) if changed & JWKS_KINDS else previous.jwks,
        envoy_filters=(
            build_envoy_filter_index(snapshot) if changed & ENVOY_FILTER_KINDS else previous.envoy_filters
        ),
        memo=Memo(),
    )


def update_push_context_endpoints(
    previous: PushContext,
    snapshot: Snapshot,
    changed_kinds: Collection[str],
    changes: Iterable[tuple[object | None, object | None]],
) -> tuple[PushContext, frozenset[str]] | None:
    """After a change of endpoint sources alone (EndpointSlices, Endpoints, Pods, given as
    (old, new) pairs): the context of ``snapshot`` with only the endpoints of the services
    they feed rebuilt, and the hosts whose endpoints changed. Sidecar scopes read services
    and routing alone, so they are kept. None for any other change (update_push_context)."""
    kinds = frozenset(changed_kinds)
    if not kinds <= ENDPOINT_SOURCE_KINDS:
        return None
    if kinds & GATEWAY_API_READS and previous.routing.gateway_api.statuses:
        return None  # the Gateway API conversion reads them too: update_push_context
    update = update_service_index(previous.service_index, snapshot, previous.mesh, changes)
    # what reads services and routing alone is kept: it cannot have changed
    memo = Memo(scopes=previous.memo.scopes, selective_rules=previous.memo.selective_rules)
    ctx = replace(previous, service_index=update.index, memo=memo)
    return ctx, update.hosts
