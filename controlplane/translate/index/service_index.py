"""The services part of the index: every service in the mesh and its endpoints per port.

Built from Services, ServiceEntries, EndpointSlices, Endpoints, Pods and WorkloadEntries
alone, so an endpoint change rebuilds this part and nothing else (routing rules and
policies are other parts of the index).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from controlplane.model.kubernetes import Endpoints, EndpointSlice, Pod, Service
from controlplane.model.labels import service_selects
from controlplane.model.mesh import MeshConfig
from controlplane.model.service_entry import ServiceEntry, WorkloadEntry
from controlplane.translate.index import services as svcs
from controlplane.translate.index.registry import DNS, DNS_ROUND_ROBIN, MeshEndpoint, MeshService

# The kinds this part is built from: a change to any other kind leaves it as it is.
SERVICE_KINDS = frozenset({"Service", "ServiceEntry", "EndpointSlice", "Endpoints", "Pod", "WorkloadEntry"})


class Snapshot(Protocol):
    """What the index reads from an input snapshot (controlplane.store.Snapshot)."""

    def of_kind(self, kind: str) -> list: ...


@dataclass(frozen=True, slots=True)
class ServiceIndex:
    services: tuple[MeshService, ...] = ()  # sorted by hostname
    by_host: Mapping[str, MeshService] = field(default_factory=dict)
    endpoints: Mapping[tuple[str, int], tuple[MeshEndpoint, ...]] = field(default_factory=dict)
    pods: svcs.PodIndex = field(default_factory=lambda: svcs.PodIndex(()))

    def service_endpoints(self, host: str, port: int) -> tuple[MeshEndpoint, ...]:
        return self.endpoints.get((host, port), ())

    def selecting(self, namespace: str, labels: Mapping[str, str]) -> list[MeshService]:
        """Services (and ServiceEntries) in ``namespace`` whose selector matches ``labels``."""
        return [
            s for s in self.services
            if s.namespace == namespace and service_selects(s.selector, labels)
        ]

    def named_container_port(self, namespace: str, pod_name: str, port_name: str) -> int | None:
        """A named targetPort resolved on a Pod (as kubelet would)."""
        pod = self.pods.by_name.get((namespace, pod_name))
        if pod is None:
            return None
        for container in pod.spec.containers:
            for port in container.ports:
                if port.name == port_name:
                    return port.container_port
        return None


def build_service_index(snapshot: Snapshot, mesh: MeshConfig) -> ServiceIndex:
    pods = svcs.PodIndex(snapshot.of_kind(Pod.KIND))
    workload_entries: list[WorkloadEntry] = snapshot.of_kind(WorkloadEntry.KIND)
    slices: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
    for sl in snapshot.of_kind(EndpointSlice.KIND):
        slices[(sl.meta.namespace, sl.service_name)].append(sl)
    legacy: dict[tuple[str, str], Endpoints] = {
        (e.meta.namespace, e.meta.name): e for e in snapshot.of_kind(Endpoints.KIND)
    }
    by_host: dict[str, MeshService] = {}
    endpoints: dict[tuple[str, int], tuple[MeshEndpoint, ...]] = {}

    # Kubernetes Services win a hostname over ServiceEntries (as Istio's registry order).
    svc: Service
    for svc in snapshot.of_kind(Service.KIND):
        ms = svcs.kubernetes_service(svc, mesh.domain_suffix)
        if ms is None or ms.hostname in by_host:
            continue
        by_host[ms.hostname] = ms
        key = (ms.namespace, ms.name)
        by_port = svcs.kubernetes_endpoints(ms, slices.get(key, []), legacy.get(key), pods)
        for we in svcs.selected_workload_entries(ms.selector, ms.namespace, workload_entries):
            for port in ms.ports:
                ep = svcs.workload_endpoint(we.spec, port, ms.namespace)
                if ep is not None:
                    by_port[port.number].append(ep)
        if ms.resolution == DNS:
            external = svc.spec.external_name
            by_port = {p.number: [MeshEndpoint(address=external, port=p.number)] for p in ms.ports}
        for number, eps in by_port.items():
            endpoints[(ms.hostname, number)] = tuple(eps)
    se: ServiceEntry
    for se in snapshot.of_kind(ServiceEntry.KIND):
        for ms in svcs.service_entry_services(se):
            if ms.hostname in by_host:
                continue
            by_host[ms.hostname] = ms
            selected = svcs.selected_workload_entries(ms.selector, ms.namespace, workload_entries)
            for port in ms.ports:
                eps = [svcs.workload_endpoint(e, port, ms.namespace) for e in se.spec.endpoints]
                eps += [svcs.workload_endpoint(we.spec, port, ms.namespace) for we in selected]
                found = [e for e in eps if e is not None]
                if not found and ms.resolution in (DNS, DNS_ROUND_ROBIN) and not ms.hostname.startswith("*"):
                    found = [MeshEndpoint(address=ms.hostname, port=port.number)]
                endpoints[(ms.hostname, port.number)] = tuple(found)
    services = tuple(sorted(by_host.values(), key=lambda s: s.hostname))
    return ServiceIndex(services, by_host, endpoints, pods)
