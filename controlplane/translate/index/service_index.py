"""The services part of the index: every service in the mesh and its endpoints per port.

Built from Services, ServiceEntries, EndpointSlices, Endpoints, Pods and WorkloadEntries
alone, so an endpoint change rebuilds this part and nothing else (routing rules and
policies are other parts of the index).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import immutables

from controlplane.model.kubernetes import Endpoints, EndpointSlice, Pod, Service
from controlplane.model.labels import service_selects
from controlplane.model.mesh import MeshConfig
from controlplane.model.service_entry import ServiceEntry, WorkloadEntry
from controlplane.translate.index import services as svcs
from controlplane.translate.index.endpoint_sources import EndpointSources, build_endpoint_sources
from controlplane.translate.index.registry import DNS, DNS_ROUND_ROBIN, MeshEndpoint, MeshService

# The kinds this part is built from: a change to any other kind leaves it as it is.
SERVICE_KINDS = frozenset({"Service", "ServiceEntry", "EndpointSlice", "Endpoints", "Pod", "WorkloadEntry"})


class Snapshot(Protocol):
    """What the index reads from an input snapshot (controlplane.store.Snapshot)."""

    def of_kind(self, kind: str) -> list: ...

    def get_typed(self, kind: str, namespace: str, name: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class ServiceIndex:
    services: tuple[MeshService, ...] = ()  # sorted by hostname
    by_host: Mapping[str, MeshService] = field(default_factory=dict)
    # persistent: an endpoint change shares every entry but those it rebuilds
    endpoints: immutables.Map[tuple[str, int], tuple[MeshEndpoint, ...]] = field(
        default_factory=immutables.Map
    )
    pods: svcs.PodIndex = field(default_factory=lambda: svcs.PodIndex(()))
    sources: EndpointSources = field(default_factory=EndpointSources)
    # by namespace: an endpoint change reads those of its services' namespaces alone
    workload_entries: Mapping[str, list[WorkloadEntry]] = field(default_factory=dict)
    # (namespace, a selector's first label, its value) -> the services of that selector
    # (_selector_index): a lookup costs the candidates, not every service
    by_selector: Mapping[tuple[str, str, str], tuple[MeshService, ...]] = field(default_factory=dict)

    def service_endpoints(self, host: str, port: int) -> tuple[MeshEndpoint, ...]:
        return self.endpoints.get((host, port), ())

    def selecting(self, namespace: str, labels: Mapping[str, str]) -> list[MeshService]:
        """Services (and ServiceEntries) in ``namespace`` whose selector matches ``labels``,
        sorted by hostname. A service is indexed by one label of its selector, which
        ``labels`` must hold for it to match: the candidates are found by ``labels``' own."""
        found = [
            s
            for key, value in labels.items()
            for s in self.by_selector.get((namespace, key, value), ())
            if service_selects(s.selector, labels)
        ]
        found.sort(key=lambda s: s.hostname)
        return found

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
        by_port = _kubernetes_endpoints(svc, ms, slices.get(key, []), legacy.get(key), pods, workload_entries)
        for number, port_endpoints in by_port.items():
            endpoints[(ms.hostname, number)] = port_endpoints
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
    entries_by_namespace: dict[str, list[WorkloadEntry]] = defaultdict(list)
    for we in workload_entries:
        entries_by_namespace[we.meta.namespace].append(we)
    return ServiceIndex(
        services, by_host, immutables.Map(endpoints), pods, build_endpoint_sources(slices, legacy),
        dict(entries_by_namespace), _selector_index(services),
    )


def _selector_index(services: Iterable[MeshService]) -> dict[tuple[str, str, str], tuple[MeshService, ...]]:
    """(namespace, label, value) -> the services whose selector's first label (they are
    sorted) is that one, in the order given; those without a selector select nothing."""
    index: dict[tuple[str, str, str], list[MeshService]] = defaultdict(list)
    for service in services:
        if service.selector:
            key, value = service.selector[0]
            index[(service.namespace, key, value)].append(service)
    return {k: tuple(v) for k, v in index.items()}


def _kubernetes_endpoints(
    svc: Service,
    ms: MeshService,
    slices: list[EndpointSlice],
    legacy: Endpoints | None,
    pods: svcs.PodIndex,
    workload_entries: list[WorkloadEntry],
) -> dict[int, tuple[MeshEndpoint, ...]]:
    """Port number -> endpoints of one Kubernetes Service: its slices (or Endpoints), the
    WorkloadEntries it selects; an ExternalName's name."""
    if ms.resolution == DNS:
        external = svc.spec.external_name
        return {p.number: (MeshEndpoint(address=external, port=p.number),) for p in ms.ports}
    by_port = svcs.kubernetes_endpoints(ms, slices, legacy, pods)
    for we in svcs.selected_workload_entries(ms.selector, ms.namespace, workload_entries):
        for port in ms.ports:
            ep = svcs.workload_endpoint(we.spec, port, ms.namespace)
            if ep is not None:
                by_port[port.number].append(ep)
    return {number: tuple(eps) for number, eps in by_port.items()}


# Kinds that only feed Kubernetes Services' endpoints: a change to them alone updates the
# endpoints of the services they name and leaves every other entry (and the services) as is.
ENDPOINT_SOURCE_KINDS = frozenset({"EndpointSlice", "Endpoints", "Pod"})


@dataclass(frozen=True, slots=True)
class IndexUpdate:
    """An index after an endpoint change, and the hosts whose endpoints differ."""

    index: ServiceIndex
    hosts: frozenset[str]


def update_service_index(
    previous: ServiceIndex,
    snapshot: Snapshot,
    mesh: MeshConfig,
    changed: Iterable[tuple[object | None, object | None]],
) -> IndexUpdate:
    """``previous`` after a change of EndpointSlices, Endpoints and Pods alone, given as
    (old, new) pairs: only the endpoints of the Services they feed are rebuilt (the rest,
    and the services, are shared with ``previous``). Same result as build_service_index."""
    slice_changes: list[tuple[EndpointSlice | None, EndpointSlice | None]] = []
    legacy_changes: list[tuple[Endpoints | None, Endpoints | None]] = []
    pod_changes: list[tuple[Pod | None, Pod | None]] = []
    lists: dict[type, list[Any]] = {EndpointSlice: slice_changes, Endpoints: legacy_changes, Pod: pod_changes}
    for old, new in changed:
        lists[type(new if new is not None else old)].append((old, new))
    legacy_keys = {(e.meta.namespace, e.meta.name) for pair in legacy_changes for e in pair if e is not None}
    legacy: dict[tuple[str, str], Endpoints | None] = {
        key: snapshot.get_typed(Endpoints.KIND, *key) for key in legacy_keys
    }
    sources, names = previous.sources.updated(slice_changes, legacy_changes, legacy)
    # Pods feed the services whose slices refer to them, before and after the change.
    names |= sources.services_using(p for pair in pod_changes for p in pair if p is not None)
    pods = previous.pods.updated(pod_changes) if pod_changes else previous.pods
    endpoints = previous.endpoints.mutate()
    hosts: set[str] = set()
    for namespace, name in sorted(names):
        svc = snapshot.get_typed(Service.KIND, namespace, name)
        ms = svcs.kubernetes_service(svc, mesh.domain_suffix) if svc is not None else None
        if ms is None or previous.by_host.get(ms.hostname) != ms:
            continue  # no such Service (its slices feed nothing), or not the host's winner
        if (namespace, name) not in legacy:
            legacy[(namespace, name)] = snapshot.get_typed(Endpoints.KIND, namespace, name)
        by_port = _kubernetes_endpoints(svc, ms, list(sources.slices.get((namespace, name), ())),
                                        legacy[(namespace, name)], pods,
                                        previous.workload_entries.get(namespace, []))
        for number, eps in by_port.items():
            if endpoints.get((ms.hostname, number)) != eps:
                endpoints[(ms.hostname, number)] = eps
                hosts.add(ms.hostname)
    index = ServiceIndex(
        previous.services, previous.by_host, endpoints.finish(), pods, sources, previous.workload_entries,
        previous.by_selector,
    )
    return IndexUpdate(index, frozenset(hosts))

