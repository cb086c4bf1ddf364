"""networking.istio.io EnvoyFilter: patches to the Envoy config a proxy is sent.

Patch values are Envoy protobuf in JSON/YAML form (``@type`` for typed configs); the model
keeps them as plain (frozen) data. Turning them into Envoy messages is the translator's
work (``translate/envoy_filter``), which reports a value it cannot use on its EnvoyFilter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.common import LabelSelector, PolicyTargetReference
from controlplane.model.frozen import EMPTY

ApplyTo = Literal[
    "INVALID",
    "LISTENER",
    "FILTER_CHAIN",
    "NETWORK_FILTER",
    "HTTP_FILTER",
    "ROUTE_CONFIGURATION",
    "VIRTUAL_HOST",
    "HTTP_ROUTE",
    "CLUSTER",
    "EXTENSION_CONFIG",
    "BOOTSTRAP",
    "LISTENER_FILTER",
]
PatchContext = Literal["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]
Operation = Literal[
    "INVALID",
    "MERGE",
    "ADD",
    "REMOVE",
    "INSERT_BEFORE",
    "INSERT_AFTER",
    "INSERT_FIRST",
    "REPLACE",
    "MERGE_AND_REPLACE_LIST",
]
FilterClass = Literal["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"]
RouteAction = Literal["ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE"]


@dataclass(frozen=True, slots=True)
class SubFilterMatch:
    name: str = ""


@dataclass(frozen=True, slots=True)
class FilterMatch:
    name: str = ""
    sub_filter: SubFilterMatch | None = None


@dataclass(frozen=True, slots=True)
class FilterChainMatch:
    name: str = ""
    sni: str = ""
    transport_protocol: str = ""
    application_protocols: str = ""
    filter: FilterMatch | None = None
    destination_port: int = 0


@dataclass(frozen=True, slots=True)
class ListenerMatch:
    port_number: int = 0
    port_name: str = ""  # deprecated in Istio, ignored as there
    filter_chain: FilterChainMatch | None = None
    listener_filter: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    name: str = ""
    action: RouteAction = "ANY"


@dataclass(frozen=True, slots=True)
class VirtualHostMatch:
    name: str = ""
    route: RouteMatch | None = None
    domain_name: str = ""


@dataclass(frozen=True, slots=True)
class RouteConfigurationMatch:
    port_number: int = 0
    port_name: str = ""
    gateway: str = ""
    vhost: VirtualHostMatch | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class ClusterMatch:
    port_number: int = 0
    service: str = ""
    subset: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class ProxyMatch:
    proxy_version: str = ""  # a regular expression on the proxy's ISTIO_VERSION
    metadata: Mapping[str, str] = field(default=EMPTY)


@dataclass(frozen=True, slots=True)
class EnvoyConfigObjectMatch:
    """``context`` plus at most one of ``listener``, ``routeConfiguration``, ``cluster``."""

    context: PatchContext = "ANY"
    proxy: ProxyMatch | None = None
    listener: ListenerMatch | None = None
    route_configuration: RouteConfigurationMatch | None = None
    cluster: ClusterMatch | None = None


@dataclass(frozen=True, slots=True)
class Patch:
    operation: Operation = "INVALID"
    value: object = None  # Envoy protobuf as JSON data (frozen)
    filter_class: FilterClass = "UNSPECIFIED"


@dataclass(frozen=True, slots=True)
class EnvoyConfigObjectPatch:
    apply_to: ApplyTo = "INVALID"
    match: EnvoyConfigObjectMatch | None = None
    patch: Patch | None = None


@dataclass(frozen=True, slots=True)
class EnvoyFilterSpec:
    workload_selector: LabelSelector | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    config_patches: tuple[EnvoyConfigObjectPatch, ...] = ()
    priority: int = 0


@dataclass(frozen=True, slots=True)
class EnvoyFilter(Resource):
    KIND: ClassVar[str] = "EnvoyFilter"
    meta: ObjectMeta
    spec: EnvoyFilterSpec
