"""The services part of the index: every service in the mesh and its endpoints per port.

Built from Services, ServiceEntries, EndpointSlices, Endpoints, Pods and WorkloadEntries
alone, so an endpoint change rebuilds this part and nothing else (routing rules and
policies are other parts of the index).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import immutables

from controlplane.model.hosts import service_fqdn
from controlplane.model.kubernetes import Endpoints, EndpointSlice, Pod, Service
from controlplane.model.labels import service_selects
from controlplane.model.mesh import MeshConfig
from controlplane.model.service_entry import ServiceEntry, WorkloadEntry
from controlplane.translate.index import services as svcs
from controlplane.translate.index.endpoint_sources import EndpointSources, build_endpoint_sources
from controlplane.translate.index.registry import DNS, DNS_ROUND_ROBIN, MeshEndpoint, MeshService

# The kinds this part is built from: a change to any other kind leaves it as it is.
SERVICE_KINDS = frozenset({"Service", "ServiceEntry", "EndpointSlice", "Endpoints", "Pod", "WorkloadEntry"})
STEPS_KEPT = 32  # updates an index remembers (endpoint_hosts_changed_since)
_serials = itertools.count(1)


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
    # Its lineage (no reference to older indexes, which may then go): a serial, and the last
    # few update_service_index steps that led here (the serial each came from, the hosts
    # whose endpoints or service it changed). What was made from an older index of the line
    # needs those hosts' parts alone made again (builders/outbound.py).
    serial: int = field(default_factory=lambda: next(_serials), compare=False)
    steps: tuple[tuple[int, frozenset[str]], ...] = field(default=(), compare=False)
    # Hosts of ServiceEntries a Kubernetes Service wins: a change of that Service may hand
    # the host over, which only a rebuild decides.
    shadowed: frozenset[str] = frozenset()

    def endpoint_hosts_changed_since(self, serial: int) -> frozenset[str] | None:
        """The hosts whose endpoints (or service) differ from those of the index ``serial``,
        an ancestor of this one by update_service_index; None if it is not among the last
        few (then anything may differ)."""
        if serial == self.serial:
            return frozenset()
        for i, (base, _) in enumerate(self.steps):
            if base == serial:
                return frozenset().union(*(hosts for _, hosts in self.steps[i:]))
        return None

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
    shadowed: set[str] = set()
    se: ServiceEntry
    for se in snapshot.of_kind(ServiceEntry.KIND):
        for ms in svcs.service_entry_services(se):
            if ms.hostname in by_host:
                if by_host[ms.hostname].source_kind == "Service":
                    shadowed.add(ms.hostname)
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
        dict(entries_by_namespace), _selector_index(services), shadowed=frozenset(shadowed),
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
# What update_service_index takes: the endpoint sources, and Services (a new service, say).
UPDATABLE_KINDS = ENDPOINT_SOURCE_KINDS | {"Service"}


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
    """``previous`` after a change of EndpointSlices, Endpoints, Pods and Services alone
    (UPDATABLE_KINDS), given as (old, new) pairs: only the endpoints of the Services they feed
    are rebuilt (the rest is shared with ``previous``). Same result as build_service_index,
    which it falls back on when a changed Service's host is (or was) a ServiceEntry's too."""
    slice_changes: list[tuple[EndpointSlice | None, EndpointSlice | None]] = []
    legacy_changes: list[tuple[Endpoints | None, Endpoints | None]] = []
    pod_changes: list[tuple[Pod | None, Pod | None]] = []
    service_changes: list[tuple[Service | None, Service | None]] = []
    lists: dict[type, list[Any]] = {
        EndpointSlice: slice_changes, Endpoints: legacy_changes, Pod: pod_changes, Service: service_changes,
    }
    for old, new in changed:
        lists[type(new if new is not None else old)].append((old, new))
    by_host, services, by_selector = previous.by_host, previous.services, previous.by_selector
    endpoints = previous.endpoints.mutate()
    hosts: set[str] = set()
    if service_changes:
        updated = _services_updated(previous, service_changes, mesh, endpoints)
        if updated is None:
            index = build_service_index(snapshot, mesh)
            return IndexUpdate(index, frozenset(previous.by_host) | frozenset(index.by_host))
        by_host, hosts = updated
        services = tuple(sorted(by_host.values(), key=lambda s: s.hostname))
        by_selector = _selector_index(services)
    legacy_keys = {(e.meta.namespace, e.meta.name) for pair in legacy_changes for e in pair if e is not None}
    legacy: dict[tuple[str, str], Endpoints | None] = {
        key: snapshot.get_typed(Endpoints.KIND, *key) for key in legacy_keys
    }
    sources, names = previous.sources.updated(slice_changes, legacy_changes, legacy)
    # Pods feed the services whose slices refer to them, before and after the change.
    names |= sources.services_using(p for pair in pod_changes for p in pair if p is not None)
    names |= {(s.meta.namespace, s.meta.name) for pair in service_changes for s in pair if s is not None}
    pods = previous.pods.updated(pod_changes) if pod_changes else previous.pods
    for namespace, name in sorted(names):
        svc = snapshot.get_typed(Service.KIND, namespace, name)
        ms = svcs.kubernetes_service(svc, mesh.domain_suffix) if svc is not None else None
        if ms is None or by_host.get(ms.hostname) != ms:
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
    changed_hosts = frozenset(hosts)
    index = ServiceIndex(
        services, by_host, endpoints.finish(), pods, sources, previous.workload_entries, by_selector,
        steps=(*previous.steps[-(STEPS_KEPT - 1):], (previous.serial, changed_hosts)), shadowed=previous.shadowed,
    )
    return IndexUpdate(index, changed_hosts)


def _services_updated(
    previous: ServiceIndex,
    changes: list[tuple[Service | None, Service | None]],
    mesh: MeshConfig,
    endpoints: immutables.MapMutation[tuple[str, int], tuple[MeshEndpoint, ...]],
) -> tuple[dict[str, MeshService], set[str]] | None:
    """The services by host after ``changes`` (the endpoints of ports a changed service no
    longer has dropped from ``endpoints``; its others are rebuilt by the caller), and the
    hosts changed; None when a ServiceEntry has a say in one of them."""
    by_host = dict(previous.by_host)
    hosts: set[str] = set()
    for old, new in changes:
        svc = new if new is not None else old
        assert svc is not None
        host = service_fqdn(svc.meta.name, svc.meta.namespace, mesh.domain_suffix)
        before = by_host.get(host)
        if host in previous.shadowed or (before is not None and before.source_kind != "Service"):
            return None
        after = svcs.kubernetes_service(new, mesh.domain_suffix) if new is not None else None
        if before == after:
            continue
        hosts.add(host)
        kept = {p.number for p in after.ports} if after is not None else set()
        for port in before.ports if before is not None else ():
            if port.number not in kept:
                endpoints.pop((host, port.number), None)
        if after is None:
            by_host.pop(host, None)
        else:
            by_host[host] = after
    return by_host, hosts

