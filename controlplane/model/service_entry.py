"""networking.istio.io ServiceEntry and WorkloadEntry: services and workloads outside Kubernetes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.common import LabelSelector, Port
from controlplane.model.frozen import EMPTY

Location = Literal["MESH_EXTERNAL", "MESH_INTERNAL"]
Resolution = Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]


@dataclass(frozen=True, slots=True)
class WorkloadEntrySpec:
    """One workload: also the shape of ``ServiceEntry.spec.endpoints[]``."""

    address: str = ""
    ports: Mapping[str, int] = field(default=EMPTY)
    labels: Mapping[str, str] = field(default=EMPTY)
    network: str = ""
    locality: str = ""
    weight: int = 0
    service_account: str = ""


@dataclass(frozen=True, slots=True)
class ServiceEntrySpec:
    hosts: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()
    location: Location = "MESH_EXTERNAL"
    resolution: Resolution = "NONE"
    endpoints: tuple[WorkloadEntrySpec, ...] = ()
    workload_selector: LabelSelector | None = None
    export_to: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceEntry(Resource):
    KIND: ClassVar[str] = "ServiceEntry"
    meta: ObjectMeta
    spec: ServiceEntrySpec


@dataclass(frozen=True, slots=True)
class WorkloadEntry(Resource):
    KIND: ClassVar[str] = "WorkloadEntry"
    meta: ObjectMeta
    spec: WorkloadEntrySpec
