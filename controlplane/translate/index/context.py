"""The push context: everything derived from one input snapshot that every proxy shares
(Istio's PushContext), in parts that are built, and rebuilt, apart:

- ``service_index``: services and their endpoints (ServiceIndex), rebuilt alone after
  an endpoint change;
- ``routing``: VirtualServices, DestinationRules, Sidecars (RoutingIndex);
- ``policies``: PeerAuthentication, Telemetry, ... (PolicyIndex);
- ``credentials``: Secrets, for DestinationRule ``credentialName`` (CredentialIndex);
- ``jwks``: the keys fetched for RequestAuthentication ``jwksUri`` (JwksIndex), rebuilt
  alone after a key rotation.

``memo`` holds outputs that proxies of one scope share within this snapshot (sidecar scopes,
outbound clusters, route configurations, ...); it starts empty with every new context.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2

from controlplane.model.hosts import host_matches
from controlplane.model.labels import selector_labels, selector_matches
from controlplane.model.mesh import MeshConfig
from controlplane.model.sidecar import Sidecar
from controlplane.translate.index.credentials import (
    CREDENTIAL_KINDS,
    CredentialIndex,
    build_credential_index,
)
from controlplane.translate.index.jwks import JWKS_KINDS, JwksIndex, build_jwks_index
from controlplane.translate.index.policies import POLICY_KINDS, PolicyIndex, build_policy_index
from controlplane.translate.index.registry import MeshEndpoint, MeshService
from controlplane.translate.index.routing import (
    MESH_GATEWAY,
    ROUTING_KINDS,
    DestinationRuleEntry,
    RoutingIndex,
    VirtualServiceEntry,
    build_routing_index,
    exported_to,
)
from controlplane.translate.index.service_index import (
    SERVICE_KINDS,
    ServiceIndex,
    Snapshot,
    build_service_index,
)
from controlplane.translate.proxy import Proxy

if TYPE_CHECKING:
    from controlplane.translate.authz.builder import WorkloadRbac
    from controlplane.translate.authz.ext_authz import CustomAuthz, ResolvedProvider
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
]

# Every kind some part of the index reads.
INDEXED_KINDS = SERVICE_KINDS | ROUTING_KINDS | POLICY_KINDS | CREDENTIAL_KINDS | JWKS_KINDS

# Labels as a hashable key part (sorted pairs); None where labels do not matter.
LabelsKey = tuple[tuple[str, str], ...] | None


@dataclass
class Memo:
    """Outputs shared by proxies within one snapshot, each keyed by what it depends on."""

    scopes: dict[tuple[str, Hashable], SidecarScope] = field(default_factory=dict)
    outbound_clusters: dict[Hashable, dict[str, cluster_pb2.Cluster]] = field(default_factory=dict)
    assignments: dict[Hashable, tuple[endpoint_pb2.ClusterLoadAssignment, ...]] = field(default_factory=dict)
    route_configs: dict[Hashable, route_pb2.RouteConfiguration] = field(default_factory=dict)
    inbound_mtls: dict[tuple[str, LabelsKey], InboundMtls] = field(default_factory=dict)
    telemetry: dict[Hashable, ProxyTelemetry | None] = field(default_factory=dict)
    # Clusters to extension providers (tracers, authorizers) a proxy has none for.
    provider_clusters: dict[str, cluster_pb2.Cluster] = field(default_factory=dict)
    credential_names: dict[Hashable, tuple[str, ...]] = field(default_factory=dict)
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
    memo: Memo = field(default_factory=Memo)

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
        return any(
            selector_labels(e.rule.spec.workload_selector)
            for e in self.routing.destination_rules.get(namespace, ())
        )

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
    return PushContext(
        mesh=mesh,
        service_index=build_service_index(snapshot, mesh),
        routing=build_routing_index(snapshot, mesh),
        policies=build_policy_index(snapshot),
        credentials=build_credential_index(snapshot),
        jwks=build_jwks_index(snapshot),
    )


def update_push_context(previous: PushContext, snapshot: Snapshot, changed_kinds: Collection[str]) -> PushContext:
    """The push context of ``snapshot``, reusing the parts of ``previous`` that no kind in
    ``changed_kinds`` feeds. The memo always starts empty: its outputs mix every part."""
    changed = frozenset(changed_kinds)
    if changed - INDEXED_KINDS:  # a kind no part declares: rebuild all rather than guess
        return build_push_context(snapshot, previous.mesh)
    mesh = previous.mesh
    return replace(
        previous,
        service_index=build_service_index(snapshot, mesh) if changed & SERVICE_KINDS else previous.service_index,
        routing=build_routing_index(snapshot, mesh) if changed & ROUTING_KINDS else previous.routing,
        policies=build_policy_index(snapshot) if changed & POLICY_KINDS else previous.policies,
        credentials=build_credential_index(snapshot) if changed & CREDENTIAL_KINDS else previous.credentials,
        jwks=build_jwks_index(snapshot) if changed & JWKS_KINDS else previous.jwks,
        memo=Memo(),
    )
