"""The translator's view of services and their endpoints, whatever they came from.

Kubernetes Services and ServiceEntries both become ``MeshService``; EndpointSlices,
Endpoints, WorkloadEntries and ServiceEntry endpoints all become ``MeshEndpoint``
(Istio's ServiceInstance). Nothing here knows about protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.translate.proxy import Locality

# How the cluster of a service finds its endpoints.
EDS = "EDS"
DNS = "DNS"
DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
PASSTHROUGH = "PASSTHROUGH"  # ServiceEntry resolution NONE, headless Kubernetes Service

WILDCARD_ADDRESS = "0.0.0.0"

# An endpoint's TLS mode (Istio's IstioEndpoint.TLSMode): "istio" when a sidecar able to
# terminate mTLS fronts it; from this label, or for WorkloadEntries from their serviceAccount.
TLS_MODE_LABEL = "security.istio.io/tlsMode"
TLS_MODE_ISTIO = "istio"
TLS_MODE_DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    number: int
    protocol: str
    target_port: int | str | None = None


@dataclass(frozen=True, slots=True)
class MeshService:
    hostname: str
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]
    addresses: tuple[str, ...] = ()  # cluster IP(s); empty for headless / address-less entries
    resolution: str = EDS
    export_to: frozenset[str] = frozenset({"*"})
    # Labels selecting workloads (Service selector / ServiceEntry workloadSelector); None: none.
    selector: tuple[tuple[str, str], ...] | None = None
    mesh_external: bool = False
    source_kind: str = "Service"

    def port(self, number: int) -> ServicePort | None:
        for p in self.ports:
            if p.number == number:
                return p
        return None

    def port_named(self, name: str) -> ServicePort | None:
        for p in self.ports:
            if p.name == name:
                return p
        return None

    @property
    def address(self) -> str:
        return self.addresses[0] if self.addresses else WILDCARD_ADDRESS


@dataclass(frozen=True, slots=True)
class MeshEndpoint:
    """One workload instance behind one service port."""

    address: str
    port: int
    labels: tuple[tuple[str, str], ...] = ()
    locality: Locality = field(default_factory=Locality)
    weight: int = 0  # 0: unset
    healthy: bool = True
    service_account: str = ""
    namespace: str = ""
    tls_mode: str = TLS_MODE_DISABLED
    workload: str = ""  # Istio's WorkloadName (the endpoint's telemetry metadata); "": not known

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

