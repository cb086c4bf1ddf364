"""networking.istio.io Sidecar: which listeners and hosts a sidecar proxy gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.common import LabelSelector, Port
from controlplane.model.destination_rule import ConnectionPoolSettings
from controlplane.model.gateway import ServerTLSSettings
from controlplane.model.virtual_service import Destination

CaptureMode = Literal["DEFAULT", "IPTABLES", "NONE"]


@dataclass(frozen=True, slots=True)
class IstioIngressListener:
    port: Port | None = None
    bind: str = ""
    capture_mode: CaptureMode = "DEFAULT"
    default_endpoint: str = ""
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None


@dataclass(frozen=True, slots=True)
class IstioEgressListener:
    port: Port | None = None
    bind: str = ""
    capture_mode: CaptureMode = "DEFAULT"
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboundTrafficPolicy:
    mode: Literal["REGISTRY_ONLY", "ALLOW_ANY"] = "REGISTRY_ONLY"
    egress_proxy: Destination | None = None


@dataclass(frozen=True, slots=True)
class SidecarSpec:
    workload_selector: LabelSelector | None = None
    ingress: tuple[IstioIngressListener, ...] = ()
    egress: tuple[IstioEgressListener, ...] = ()
    inbound_connection_pool: ConnectionPoolSettings | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None


@dataclass(frozen=True, slots=True)
class Sidecar(Resource):
    KIND: ClassVar[str] = "Sidecar"
    meta: ObjectMeta
    spec: SidecarSpec
