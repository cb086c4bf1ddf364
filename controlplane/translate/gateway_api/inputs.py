"""What the Gateway API conversion reads, gathered once from an input snapshot.

Besides the Gateway API kinds, Istio's conversion looks at Services and ServiceEntries (does
a backend exist, which ports a gateway's Service has), Namespaces (``allowedRoutes``
selectors), Secrets (``certificateRefs``) and ConfigMaps (``caCertificateRefs``). Nothing
else: the conversion is rebuilt when one of ``INPUT_KINDS`` changes, and only then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from controlplane.model.base import creation_order
from controlplane.model.frozen import EMPTY
from controlplane.model.gateway_api import (
    GATEWAY_API_KINDS,
    BackendTLSPolicy,
    GatewayClass,
    GRPCRoute,
    HTTPRoute,
    KubernetesGateway,
    ListenerSet,
    ReferenceGrant,
    TCPRoute,
    TLSRoute,
    XBackendTrafficPolicy,
)
from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX, normalize_host, service_fqdn
from controlplane.model.kubernetes import ConfigMap, Namespace, Secret, Service
from controlplane.model.service_entry import ServiceEntry

INPUT_KINDS = GATEWAY_API_KINDS | {Service.KIND, ServiceEntry.KIND, Namespace.KIND, Secret.KIND, ConfigMap.KIND}


class Snapshot(Protocol):
    def of_kind(self, kind: str) -> list: ...


@dataclass(frozen=True, slots=True)
class HostInfo:
    """A service host as seen from one namespace: its ports and, for Kubernetes Services,
    the pod selector and addresses a gateway Service exposes."""

    ports: frozenset[int]
    selector: Mapping[str, str] = field(default=EMPTY)
    external_addresses: tuple[str, ...] = ()
    internal_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConversionInputs:
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    classes: tuple[GatewayClass, ...] = ()
    gateways: tuple[KubernetesGateway, ...] = ()
    listener_sets: tuple[ListenerSet, ...] = ()
    http_routes: tuple[HTTPRoute, ...] = ()
    grpc_routes: tuple[GRPCRoute, ...] = ()
    tls_routes: tuple[TLSRoute, ...] = ()
    tcp_routes: tuple[TCPRoute, ...] = ()
    grants: tuple[ReferenceGrant, ...] = ()
    backend_tls_policies: tuple[BackendTLSPolicy, ...] = ()
    backend_traffic_policies: tuple[XBackendTrafficPolicy, ...] = ()
    # (namespace, name) of every Kubernetes Service
    services: frozenset[tuple[str, str]] = frozenset()
    # (namespace, name) of every Kubernetes Service -> its ports' numbers by name
    service_ports: Mapping[tuple[str, str], Mapping[str, int]] = field(default_factory=dict)
    # hostname -> namespace -> what that namespace's Service or ServiceEntry offers
    hosts: Mapping[str, Mapping[str, HostInfo]] = field(default_factory=dict)
    service_entries: Mapping[tuple[str, str], ServiceEntry] = field(default_factory=dict)
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secrets: Mapping[tuple[str, str], Secret] = field(default_factory=dict)
    config_maps: Mapping[tuple[str, str], ConfigMap] = field(default_factory=dict)

    def lookup_host(self, hostname: str, namespace: str) -> HostInfo | None:
        return self.hosts.get(normalize_host(hostname), {}).get(namespace)

    @property
    def empty(self) -> bool:
        return not (self.gateways or self.listener_sets or self.http_routes or self.grpc_routes or self.tls_routes
                    or self.tcp_routes or self.backend_tls_policies or self.backend_traffic_policies)


def _sorted(items: list) -> tuple:  # type: ignore[type-arg]
    # Istio's conversion orders by creation time, then namespace, then name.
    return tuple(sorted(items, key=lambda r: (creation_order(r.meta), r.meta.namespace, r.meta.name)))


def inputs_from_snapshot(snapshot: Snapshot, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> ConversionInputs:
    hosts: dict[str, dict[str, HostInfo]] = {}
    services: set[tuple[str, str]] = set()
    service_ports: dict[tuple[str, str], Mapping[str, int]] = {}
    svc: Service
    for svc in snapshot.of_kind(Service.KIND):
        ns = svc.meta.namespace
        services.add((ns, svc.meta.name))
        service_ports[(ns, svc.meta.name)] = {p.name: p.port for p in svc.spec.ports if p.name}
        external = tuple(svc.spec.external_ips) + ((svc.spec.load_balancer_ip,) if svc.spec.load_balancer_ip else ())
        internal = tuple(ip for ip in (svc.spec.cluster_ips or (svc.spec.cluster_ip,)) if ip and ip != "None")
        hosts.setdefault(service_fqdn(svc.meta.name, ns, domain_suffix), {})[ns] = HostInfo(
            frozenset(p.port for p in svc.spec.ports), svc.spec.selector, external, internal
        )
    entries: dict[tuple[str, str], ServiceEntry] = {}
    se: ServiceEntry
    for se in snapshot.of_kind(ServiceEntry.KIND):
        entries[(se.meta.namespace, se.meta.name)] = se
        ports = frozenset(p.number for p in se.spec.ports)
        for host in se.spec.hosts:
            hosts.setdefault(normalize_host(host), {}).setdefault(se.meta.namespace, HostInfo(ports))
    return ConversionInputs(
        domain_suffix=domain_suffix,
        classes=_sorted(snapshot.of_kind(GatewayClass.KIND)),
        gateways=_sorted(snapshot.of_kind(KubernetesGateway.KIND)),
        listener_sets=_sorted(snapshot.of_kind(ListenerSet.KIND)),
        http_routes=_sorted(snapshot.of_kind(HTTPRoute.KIND)),
        grpc_routes=_sorted(snapshot.of_kind(GRPCRoute.KIND)),
        tls_routes=_sorted(snapshot.of_kind(TLSRoute.KIND)),
        tcp_routes=_sorted(snapshot.of_kind(TCPRoute.KIND)),
        grants=_sorted(snapshot.of_kind(ReferenceGrant.KIND)),
        backend_tls_policies=_sorted(snapshot.of_kind(BackendTLSPolicy.KIND)),
        backend_traffic_policies=_sorted(snapshot.of_kind(XBackendTrafficPolicy.KIND)),
        services=frozenset(services),
        service_ports=service_ports,
        hosts=hosts,
        service_entries=entries,
        namespace_labels={n.meta.name: n.meta.labels for n in snapshot.of_kind(Namespace.KIND)},
        secrets={(s.meta.namespace, s.meta.name): s for s in snapshot.of_kind(Secret.KIND)},
        config_maps={(c.meta.namespace, c.meta.name): c for c in snapshot.of_kind(ConfigMap.KIND)},
    )
