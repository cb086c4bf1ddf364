"""Model objects -> the translator's registry: Services/ServiceEntries and their endpoints.

Endpoints of a Kubernetes Service come from its EndpointSlices (Endpoints when it has
none) plus the WorkloadEntries its selector matches; a ServiceEntry's from its inline
endpoints plus the WorkloadEntries its workloadSelector matches. Endpoint labels (for
subsets) and topology come from the Pod an endpoint points at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import immutables

from controlplane.model.canonical import WORKLOAD_NAME_LABEL, pod_workload_name
from controlplane.model.hosts import normalize_host, service_fqdn
from controlplane.model.kubernetes import (
    EndpointPort,
    Endpoints,
    EndpointSlice,
    ObjectReference,
    Pod,
    Service,
)
from controlplane.model.labels import selector_matches
from controlplane.model.locality import pod_locality, workload_entry_locality
from controlplane.model.service_entry import ServiceEntry, WorkloadEntry, WorkloadEntrySpec
from controlplane.translate import protocol as proto
from controlplane.translate.index.registry import (
    DNS,
    DNS_ROUND_ROBIN,
    EDS,
    PASSTHROUGH,
    TLS_MODE_DISABLED,
    TLS_MODE_ISTIO,
    TLS_MODE_LABEL,
    MeshEndpoint,
    MeshService,
    ServicePort,
)

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"

_SE_RESOLUTION = {
    "NONE": PASSTHROUGH,
    "STATIC": EDS,
    "DNS": DNS,
    "DYNAMIC_DNS": DNS,
    "DNS_ROUND_ROBIN": DNS_ROUND_ROBIN,
}


def export_set(values: Iterable[str]) -> frozenset[str]:
    items = frozenset(v.strip() for v in values if v and v.strip())
    return items or frozenset({"*"})


def kubernetes_service(svc: Service, domain_suffix: str) -> MeshService | None:
    spec = svc.spec
    if spec.type == "ExternalName" and not spec.external_name:
        return None
    ports = tuple(
        ServicePort(
            name=p.name,
            number=p.port,
            protocol=proto.port_protocol(p.name, p.app_protocol),
            target_port=p.effective_target_port,
        )
        for p in spec.ports
        if p.protocol == "TCP"
    )
    resolution = EDS
    addresses: tuple[str, ...] = ()
    if spec.type == "ExternalName":
        resolution = DNS
    elif spec.is_headless:
        resolution = PASSTHROUGH
    else:
        addresses = tuple(dict.fromkeys(a for a in (spec.cluster_ip, *spec.cluster_ips) if a and a != "None"))
    export = svc.meta.annotations.get(EXPORT_TO_ANNOTATION, "")
    return MeshService(
        hostname=service_fqdn(svc.meta.name, svc.meta.namespace, domain_suffix),
        namespace=svc.meta.namespace,
        name=svc.meta.name,
        ports=ports,
        addresses=addresses,
        resolution=resolution,
        export_to=export_set(export.split(",")),
        selector=tuple(sorted(spec.selector.items())) if spec.selector else None,
        source_kind="Service",
    )


def service_entry_services(se: ServiceEntry) -> list[MeshService]:
    spec = se.spec
    ports = tuple(
        ServicePort(
            name=p.name,
            number=p.number,
            protocol=proto.parse_protocol(p.protocol),
            target_port=p.target_port or None,
        )
        for p in spec.ports
    )
    selector = None
    if spec.workload_selector is not None:
        selector = tuple(sorted(spec.workload_selector.labels.items()))
    return [
        MeshService(
            hostname=normalize_host(host),  # hosts compare case-insensitively (model.hosts)
            namespace=se.meta.namespace,
            name=se.meta.name,
            ports=ports,
            addresses=tuple(a for a in spec.addresses if "/" not in a or a.endswith("/32")),
            resolution=_SE_RESOLUTION.get(spec.resolution, PASSTHROUGH),
            export_to=export_set(spec.export_to),
            selector=selector,
            mesh_external=spec.location == "MESH_EXTERNAL",
            source_kind="ServiceEntry",
        )
        for host in spec.hosts
    ]


def labels_tls_mode(labels: Mapping[str, str]) -> str:
    """A Pod's TLS mode: its ``security.istio.io/tlsMode`` label (Istio's
    GetTLSModeFromEndpointLabels)."""
    return labels.get(TLS_MODE_LABEL, TLS_MODE_DISABLED)


def workload_entry_tls_mode(wl: WorkloadEntrySpec) -> str:
    """Istio's getTLSModeFromWorkloadEntry (serviceentry/conversion.go): the label wins, even
    ``disabled``; without it, a WorkloadEntry or ServiceEntry endpoint that names a
    serviceAccount is ``istio`` (its sidecar holds that identity's certificate)."""
    if TLS_MODE_LABEL in wl.labels:
        return wl.labels[TLS_MODE_LABEL]
    return TLS_MODE_ISTIO if wl.service_account else TLS_MODE_DISABLED


def workload_endpoint(
    wl: WorkloadEntrySpec, port: ServicePort, namespace: str, default_sa: str = ""
) -> MeshEndpoint | None:
    """A WorkloadEntry (or ServiceEntry inline endpoint) behind one service port."""
    if not wl.address:
        return None
    number = wl.ports.get(port.name) if port.name else None
    if number is None:
        number = port.target_port if isinstance(port.target_port, int) else port.number
    return MeshEndpoint(
        address=wl.address.removeprefix("unix://"),
        port=number,
        labels=tuple(sorted(wl.labels.items())),
        locality=workload_entry_locality(wl.locality, wl.labels),
        weight=wl.weight,
        service_account=wl.service_account or default_sa,
        namespace=namespace,
        tls_mode=workload_entry_tls_mode(wl),
        workload=wl.labels.get(WORKLOAD_NAME_LABEL, ""),
    )


class PodIndex:
    """Pods by (namespace, name) and by IP, for endpoint labels and locality. The maps are
    persistent (``immutables.Map``): ``updated`` shares all but the entries a change touches."""

    def __init__(self, pods: Iterable[Pod]) -> None:
        by_name: dict[tuple[str, str], Pod] = {}
        by_ip: dict[str, Pod] = {}
        holders: dict[str, frozenset[tuple[str, str]]] = {}
        for pod in pods:
            key = (pod.meta.namespace, pod.meta.name)
            by_name[key] = pod
            for ip in pod.ips:
                by_ip.setdefault(ip, pod)
                holders[ip] = holders.get(ip, frozenset()) | {key}
        self.by_name: immutables.Map[tuple[str, str], Pod] = immutables.Map(by_name)
        self.by_ip: immutables.Map[str, Pod] = immutables.Map(by_ip)
        # Every pod holding an IP: the first by (namespace, name) is the one by_ip names.
        self._holders: immutables.Map[str, frozenset[tuple[str, str]]] = immutables.Map(holders)

    def updated(self, changes: Iterable[tuple[Pod | None, Pod | None]]) -> PodIndex:
        """This index after Pods changed, given as (old, new): the same as one built from all
        Pods anew, for the cost of the change."""
        by_name, by_ip, holders = self.by_name.mutate(), self.by_ip.mutate(), self._holders.mutate()
        touched: set[str] = set()
        for old, new in changes:
            if old is not None:
                key = (old.meta.namespace, old.meta.name)
                by_name.pop(key, None)
                for ip in old.ips:
                    holders[ip] = holders.get(ip, frozenset()) - {key}
                    touched.add(ip)
            if new is not None:
                key = (new.meta.namespace, new.meta.name)
                by_name[key] = new
                for ip in new.ips:
                    holders[ip] = holders.get(ip, frozenset()) | {key}
                    touched.add(ip)
        for ip in touched:
            held = holders.get(ip)
            if held:
                by_ip[ip] = by_name[min(held)]
            else:
                holders.pop(ip, None)
                by_ip.pop(ip, None)
        index = PodIndex(())
        index.by_name, index.by_ip, index._holders = by_name.finish(), by_ip.finish(), holders.finish()
        return index

    def find(self, namespace: str, target_ref: ObjectReference | None, ip: str) -> Pod | None:
        if target_ref is not None and target_ref.kind == "Pod":
            pod = self.by_name.get((target_ref.namespace or namespace, target_ref.name))
            if pod is not None:
                return pod
        return self.by_ip.get(ip)


def _endpoint_from_address(
    ip: str,
    port: int,
    namespace: str,
    pods: PodIndex,
    target_ref: ObjectReference | None,
    ready: bool,
) -> MeshEndpoint | None:
    """None for an address whose targetRef names a Pod not (yet) known: its labels, service
    account and tlsMode would be wrong (no subset, no identity, plaintext), so it is left out
    until the Pod arrives, as Istio's getPod/registerEndpointResync do (the Pod's arrival
    rebuilds the endpoints of the services whose slices name it, EndpointSources.services_using).
    Watches of different kinds are not ordered: the slice may come first."""
    # Locality as Istio's: from the Pod only (not the slice's zone, which Istio never reads).
    pod = pods.find(namespace, target_ref, ip)
    if pod is None and target_ref is not None and target_ref.kind == "Pod":
        return None
    labels: Mapping[str, str] = pod.meta.labels if pod is not None else {}
    return MeshEndpoint(
        address=ip,
        port=port,
        labels=tuple(sorted(labels.items())),
        locality=pod_locality(labels),
        healthy=ready,
        service_account=pod.spec.service_account_name if pod is not None else "",
        namespace=namespace,
        tls_mode=labels_tls_mode(labels),
        workload=pod_workload_name(pod.meta.name, labels) if pod is not None else "",
    )


def _slice_port(ports: Iterable[EndpointPort], service_port: ServicePort) -> int | None:
    for p in ports:
        if (p.name or "") == (service_port.name or "") and p.port:
            return p.port
    return None


def kubernetes_endpoints(
    service: MeshService,
    slices: list[EndpointSlice],
    legacy: Endpoints | None,
    pods: PodIndex,
) -> dict[int, list[MeshEndpoint]]:
    """Service port number -> ready endpoints, from EndpointSlices or else Endpoints."""
    out: dict[int, list[MeshEndpoint]] = {p.number: [] for p in service.ports}
    if slices:
        for sl in slices:
            if sl.address_type == "FQDN":
                continue
            for sp in service.ports:
                number = _slice_port(sl.ports, sp)
                if number is None:
                    continue
                for ep in sl.endpoints:
                    if not ep.is_ready:
                        continue
                    for ip in ep.addresses[:1]:
                        endpoint = _endpoint_from_address(
                            ip, number, service.namespace, pods, ep.target_ref, True
                        )
                        if endpoint is not None:
                            out[sp.number].append(endpoint)
    elif legacy is not None:
        for subset in legacy.subsets:
            for sp in service.ports:
                number = _slice_port(subset.ports, sp)
                if number is None:
                    continue
                for addr in subset.addresses:
                    endpoint = _endpoint_from_address(
                        addr.ip, number, service.namespace, pods, addr.target_ref, True
                    )
                    if endpoint is not None:
                        out[sp.number].append(endpoint)
    return out


def selected_workload_entries(
    selector: tuple[tuple[str, str], ...] | None, namespace: str, entries: list[WorkloadEntry]
) -> list[WorkloadEntry]:
    if not selector:
        return []
    return [we for we in entries if we.meta.namespace == namespace and selector_matches(selector, we.spec.labels)]
