"""Kubernetes kinds the mesh reads: Service, EndpointSlice, Endpoints, Pod, Namespace, Secret,
ServiceAccount.

Objects from a live API server carry many fields the mesh never reads (container images,
status conditions); classes marked ``LENIENT`` ignore those instead of refusing them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.decode import jfield
from controlplane.model.frozen import EMPTY

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Protocol = Literal["TCP", "UDP", "SCTP"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]


# --- Service ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    name: str = ""
    protocol: Protocol = "TCP"
    app_protocol: str = ""
    # A number or the name of a container port; None means "same as port".
    target_port: int | str | None = None
    node_port: int = 0

    @property
    def effective_target_port(self) -> int | str:
        return self.port if self.target_port is None else self.target_port


@dataclass(frozen=True, slots=True)
class SessionAffinityConfig:
    LENIENT: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    ports: tuple[ServicePort, ...] = ()
    selector: Mapping[str, str] = field(default=EMPTY)
    cluster_ip: str = jfield("clusterIP", default="")
    cluster_ips: tuple[str, ...] = jfield("clusterIPs", default=())
    type: ServiceType = "ClusterIP"
    external_name: str = ""
    external_ips: tuple[str, ...] = jfield("externalIPs", default=())
    session_affinity: Literal["None", "ClientIP"] = "None"
    session_affinity_config: SessionAffinityConfig | None = None
    load_balancer_ip: str = jfield("loadBalancerIP", default="")
    load_balancer_source_ranges: tuple[str, ...] = ()
    load_balancer_class: str = ""
    allocate_load_balancer_node_ports: bool | None = None
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    internal_traffic_policy: Literal["Cluster", "Local"] | None = None
    health_check_node_port: int = 0
    publish_not_ready_addresses: bool = False
    ip_families: tuple[Literal["IPv4", "IPv6"], ...] = ()
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    traffic_distribution: str = ""

    @property
    def is_headless(self) -> bool:
        return self.cluster_ip == "None"


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    LENIENT: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Service(Resource):
    KIND: ClassVar[str] = "Service"
    meta: ObjectMeta
    spec: ServiceSpec
    status: ServiceStatus | None = None


# --- EndpointSlice and Endpoints -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectReference:
    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""


@dataclass(frozen=True, slots=True)
class EndpointConditions:
    # Kubernetes: a nil ``ready`` means ready (unknown state is interpreted as ready).
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@dataclass(frozen=True, slots=True)
class ForZone:
    name: str


@dataclass(frozen=True, slots=True)
class ForNode:
    name: str


@dataclass(frozen=True, slots=True)
class EndpointHints:
    for_zones: tuple[ForZone, ...] = ()
    for_nodes: tuple[ForNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    conditions: EndpointConditions = field(default_factory=EndpointConditions)
    hostname: str = ""
    target_ref: ObjectReference | None = None
    node_name: str = ""
    zone: str = ""
    hints: EndpointHints | None = None
    deprecated_topology: Mapping[str, str] = field(default=EMPTY)

    @property
    def is_ready(self) -> bool:
        return self.conditions.ready is not False


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str = ""
    protocol: Protocol = "TCP"
    port: int | None = None
    app_protocol: str = ""


@dataclass(frozen=True, slots=True)
class EndpointSlice(Resource):
    KIND: ClassVar[str] = "EndpointSlice"
    meta: ObjectMeta
    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()

    @property
    def service_name(self) -> str:
        """The Service this slice belongs to (its ``kubernetes.io/service-name`` label)."""
        return self.meta.labels.get(SERVICE_NAME_LABEL, "")


@dataclass(frozen=True, slots=True)
class EndpointAddress:
    ip: str
    hostname: str = ""
    node_name: str = ""
    target_ref: ObjectReference | None = None


@dataclass(frozen=True, slots=True)
class EndpointSubset:
    addresses: tuple[EndpointAddress, ...] = ()
    not_ready_addresses: tuple[EndpointAddress, ...] = ()
    ports: tuple[EndpointPort, ...] = ()


@dataclass(frozen=True, slots=True)
class Endpoints(Resource):
    """core/v1 Endpoints, used only when no EndpointSlice exists for a Service."""

    KIND: ClassVar[str] = "Endpoints"
    meta: ObjectMeta
    subsets: tuple[EndpointSubset, ...] = ()


# --- Pod -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: Protocol = "TCP"
    host_port: int = 0
    host_ip: str = jfield("hostIP", default="")


@dataclass(frozen=True, slots=True)
class Container:
    LENIENT: ClassVar[bool] = True
    name: str = ""
    ports: tuple[ContainerPort, ...] = ()


@dataclass(frozen=True, slots=True)
class PodSpec:
    LENIENT: ClassVar[bool] = True
    # Kubernetes fills in "default" on admission when a Pod names no service account.
    service_account_name: str = "default"
    node_name: str = ""
    host_network: bool = False
    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()


@dataclass(frozen=True, slots=True)
class PodIP:
    ip: str


@dataclass(frozen=True, slots=True)
class PodStatus:
    LENIENT: ClassVar[bool] = True
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] = "Pending"
    pod_ip: str = jfield("podIP", default="")
    pod_ips: tuple[PodIP, ...] = jfield("podIPs", default=())
    host_ip: str = jfield("hostIP", default="")


@dataclass(frozen=True, slots=True)
class Pod(Resource):
    KIND: ClassVar[str] = "Pod"
    meta: ObjectMeta
    spec: PodSpec = field(default_factory=PodSpec)
    status: PodStatus = field(default_factory=PodStatus)

    @property
    def ips(self) -> tuple[str, ...]:
        """Every IP of the pod, primary first."""
        ips = [p.ip for p in self.status.pod_ips]
        if self.status.pod_ip and self.status.pod_ip not in ips:
            ips.insert(0, self.status.pod_ip)
        return tuple(ips)


# --- Namespace, Secret, ServiceAccount -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NamespaceSpec:
    LENIENT: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Namespace(Resource):
    """Cluster-scoped: ``meta.namespace`` is "" and the name is ``meta.name``."""

    KIND: ClassVar[str] = "Namespace"
    meta: ObjectMeta
    spec: NamespaceSpec | None = None
    status: NamespaceSpec | None = None


@dataclass(frozen=True, slots=True)
class Secret(Resource):
    """``data`` holds the decoded bytes of ``data`` (base64) merged with ``stringData``."""

    KIND: ClassVar[str] = "Secret"
    meta: ObjectMeta
    type: str = "Opaque"
    data: Mapping[str, bytes] = field(default=EMPTY)
    immutable: bool = False

    @property
    def tls_certificate(self) -> bytes | None:
        return self.data.get("tls.crt") or self.data.get("cert")

    @property
    def tls_private_key(self) -> bytes | None:
        return self.data.get("tls.key") or self.data.get("key")

    @property
    def ca_certificate(self) -> bytes | None:
        return self.data.get("ca.crt") or self.data.get("cacert")

    def __repr__(self) -> str:  # key material never reaches logs
        return f"Secret({self.meta.namespace}/{self.meta.name}, type={self.type}, keys={sorted(self.data)})"


@dataclass(frozen=True, slots=True)
class ConfigMap(Resource):
    """Read for the CA certificates a Gateway API Gateway names (``spec.tls.frontend``:
    ``ca.crt``); ``binaryData`` values stay base64 text, as the API serves them."""

    KIND: ClassVar[str] = "ConfigMap"
    meta: ObjectMeta
    data: Mapping[str, str] = field(default=EMPTY)
    binary_data: Mapping[str, str] = field(default=EMPTY)
    immutable: bool = False

    @property
    def ca_certificate(self) -> bytes | None:
        """``cacert``, else ``ca.crt``, from ``data``, else from ``binaryData`` (Istio's
        ExtractRootFromString)."""
        for key in ("cacert", "ca.crt"):
            text = self.data.get(key)
            if text:
                return text.encode()
        for key in ("cacert", "ca.crt"):
            encoded = self.binary_data.get(key)
            if encoded:
                try:
                    return base64.b64decode(encoded, validate=True)
                except (binascii.Error, ValueError):
                    return None
        return None


@dataclass(frozen=True, slots=True)
class ServiceAccount(Resource):
    LENIENT: ClassVar[bool] = True
    KIND: ClassVar[str] = "ServiceAccount"
    meta: ObjectMeta
    automount_service_account_token: bool | None = None
