"""Everything derived from one input snapshot that every proxy shares (Istio's PushContext).

Built once per snapshot: the service registry, endpoints per service port, virtual
services by gateway, destination rules by namespace, sidecars by namespace. Per-proxy
work then only filters and builds protobuf. ``scope_cache`` memoizes sidecar scopes
for this snapshot (keyed by namespace and Sidecar), so proxies in one namespace share it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from controlplane.translate.index import services as svcs
from controlplane.translate.hosts import host_matches, resolve_short_name, specificity
from controlplane.model.mesh import MeshConfig
from controlplane.translate.proxy import Proxy
from controlplane.translate.index.registry import (
    DNS,
    DNS_ROUND_ROBIN,
    MeshEndpoint,
    MeshService,
    labels_match,
)

MESH_GATEWAY = "mesh"


@dataclass(frozen=True, slots=True)
class VirtualServiceEntry:
    vs: Any  # model VirtualService
    hosts: tuple[str, ...]  # resolved to FQDNs
    gateways: frozenset[str]  # "mesh" or "ns/name"
    export_to: frozenset[str]

    @property
    def namespace(self) -> str:
        return self.vs.meta.namespace


@dataclass(frozen=True, slots=True)
class DestinationRuleEntry:
    rule: Any  # model DestinationRule
    host: str  # resolved
    export_to: frozenset[str]

    @property
    def namespace(self) -> str:
        return self.rule.meta.namespace


@dataclass
class DestinationRuleIndex:
    """One namespace's DestinationRules: by exact host, and wildcard ones by specificity."""

    exact: dict[str, list[DestinationRuleEntry]] = field(default_factory=dict)
    wildcards: list[DestinationRuleEntry] = field(default_factory=list)


def _selector_labels(selector: Any) -> dict[str, str]:
    """A DestinationRule's workloadSelector labels (Istio's type: ``matchLabels``)."""
    return dict(selector.match_labels) if selector is not None else {}


def exported_to(export: frozenset[str], owner_ns: str, proxy_ns: str) -> bool:
    if "*" in export:
        return True
    if "~" in export and len(export) == 1:
        return False
    return proxy_ns in export or ("." in export and owner_ns == proxy_ns)


@dataclass
class PushContext:
    mesh: MeshConfig
    snapshot: Any
    services: list[MeshService] = field(default_factory=list)  # sorted by hostname
    service_by_host: dict[str, MeshService] = field(default_factory=dict)
    endpoints: dict[tuple[str, int], list[MeshEndpoint]] = field(default_factory=dict)
    virtual_services: list[VirtualServiceEntry] = field(default_factory=list)
    destination_rules: dict[str, list[DestinationRuleEntry]] = field(default_factory=dict)
    sidecars: dict[str, list[Any]] = field(default_factory=dict)
    dr_index: dict[str, DestinationRuleIndex] = field(default_factory=dict)
    uses_failover_priority: bool = False
    pods: svcs.PodIndex | None = None
    scope_cache: dict[Any, Any] = field(default_factory=dict)

    # --- lookups --------------------------------------------------------------------------
    def service_endpoints(self, host: str, port: int) -> list[MeshEndpoint]:
        return self.endpoints.get((host, port), [])

    def destination_rule(self, proxy: Proxy, host: str) -> DestinationRuleEntry | None:
        """Istio's order: the proxy's namespace, then the service's, then the root namespace;
        within one, an exact host before the most specific wildcard."""
        service = self.service_by_host.get(host)
        order = [proxy.namespace]
        if service is not None and service.namespace not in order:
            order.append(service.namespace)
        if self.mesh.root_namespace not in order:
            order.append(self.mesh.root_namespace)
        for ns in order:
            index = self.dr_index.get(ns)
            if index is None:
                continue
            for entry in index.exact.get(host, ()):
                if self._dr_applies(entry, ns, proxy):
                    return entry
            for entry in index.wildcards:  # sorted most specific first
                if host_matches(entry.host, host) and self._dr_applies(entry, ns, proxy):
                    return entry
        return None

    def has_selective_rule(self, namespace: str) -> bool:
        """Does a DestinationRule in ``namespace`` select workloads (so results differ by labels)?"""
        return any(
            _selector_labels(e.rule.spec.workload_selector) for e in self.destination_rules.get(namespace, ())
        )

    @staticmethod
    def _dr_applies(entry: DestinationRuleEntry, ns: str, proxy: Proxy) -> bool:
        if not exported_to(entry.export_to, ns, proxy.namespace):
            return False
        selector = _selector_labels(entry.rule.spec.workload_selector)
        if selector:
            return ns == proxy.namespace and labels_match(selector, proxy.label_map)
        return True

    def sidecar_for(self, proxy: Proxy) -> Any:
        """The Sidecar resource that applies: one selecting the workload, else the
        namespace default, else the root namespace default."""
        labels = proxy.label_map
        candidates = self.sidecars.get(proxy.namespace, [])
        for sc in candidates:
            sel = sc.spec.workload_selector
            if sel is not None and sel.labels and labels_match(dict(sel.labels), labels):
                return sc
        for sc in candidates:
            if sc.spec.workload_selector is None or not sc.spec.workload_selector.labels:
                return sc
        for sc in self.sidecars.get(self.mesh.root_namespace, []):
            if sc.spec.workload_selector is None or not sc.spec.workload_selector.labels:
                return sc
        return None

    def named_container_port(self, proxy: Proxy, name: str) -> int | None:
        """A named targetPort resolved on the proxy's own Pod (as kubelet would)."""
        pod = self.pods.by_name.get((proxy.namespace, proxy.pod_name)) if self.pods else None
        if pod is None:
            return None
        for container in pod.spec.containers:
            for port in container.ports:
                if port.name == name:
                    return port.container_port
        return None

    def services_selecting(self, namespace: str, labels: dict[str, str]) -> list[MeshService]:
        """Services (and ServiceEntries) in ``namespace`` whose selector matches ``labels``."""
        return [
            s for s in self.services
            if s.namespace == namespace and s.selector and labels_match(s.selector, labels)
        ]


def _sorted_kind(snapshot: Any, kind: str) -> list[Any]:
    return list(snapshot.of_kind(kind))


def _has_failover_priority(spec: Any) -> bool:
    policies = [spec.traffic_policy] + [s.traffic_policy for s in spec.subsets]
    lbs = []
    for p in policies:
        if p is not None:
            lbs.append(p.load_balancer)
            lbs += [pls.load_balancer for pls in p.port_level_settings]
    return any(
        lb is not None and lb.locality_lb_setting is not None and lb.locality_lb_setting.failover_priority
        for lb in lbs
    )


def build_push_context(snapshot: Any, mesh: MeshConfig) -> PushContext:
    ctx = PushContext(mesh=mesh, snapshot=snapshot)
    pods = ctx.pods = svcs.PodIndex(_sorted_kind(snapshot, "Pod"))
    workload_entries = _sorted_kind(snapshot, "WorkloadEntry")
    slices: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for sl in _sorted_kind(snapshot, "EndpointSlice"):
        slices[(sl.meta.namespace, sl.service_name)].append(sl)
    legacy = {(e.meta.namespace, e.meta.name): e for e in _sorted_kind(snapshot, "Endpoints")}

    # Kubernetes Services win a hostname over ServiceEntries (as Istio's registry order).
    for svc in _sorted_kind(snapshot, "Service"):
        ms = svcs.kubernetes_service(svc, mesh.domain_suffix)
        if ms is None or ms.hostname in ctx.service_by_host:
            continue
        ctx.service_by_host[ms.hostname] = ms
        by_port = svcs.kubernetes_endpoints(ms, slices.get((ms.namespace, ms.name), []), legacy.get((ms.namespace, ms.name)), pods)
        for we in svcs.selected_workload_entries(ms.selector, ms.namespace, workload_entries):
            for port in ms.ports:
                ep = svcs.workload_endpoint(we.spec, port, ms.namespace)
                if ep is not None:
                    by_port[port.number].append(ep)
        if ms.resolution == DNS:
            external = svc.spec.external_name
            by_port = {p.number: [MeshEndpoint(address=external, port=p.number)] for p in ms.ports}
        for number, eps in by_port.items():
            ctx.endpoints[(ms.hostname, number)] = eps
    for se in _sorted_kind(snapshot, "ServiceEntry"):
        for ms in svcs.service_entry_services(se):
            if ms.hostname in ctx.service_by_host:
                continue
            ctx.service_by_host[ms.hostname] = ms
            selected = svcs.selected_workload_entries(ms.selector, ms.namespace, workload_entries)
            for port in ms.ports:
                eps = [svcs.workload_endpoint(e, port, ms.namespace) for e in se.spec.endpoints]
                eps += [svcs.workload_endpoint(we.spec, port, ms.namespace) for we in selected]
                found = [e for e in eps if e is not None]
                if not found and ms.resolution in (DNS, DNS_ROUND_ROBIN) and not ms.hostname.startswith("*"):
                    found = [MeshEndpoint(address=ms.hostname, port=port.number)]
                ctx.endpoints[(ms.hostname, port.number)] = found
    ctx.services = sorted(ctx.service_by_host.values(), key=lambda s: s.hostname)

    for vs in _sorted_kind(snapshot, "VirtualService"):
        ns = vs.meta.namespace
        gateways = frozenset(
            g if g == MESH_GATEWAY or "/" in g else f"{ns}/{g}" for g in (vs.spec.gateways or (MESH_GATEWAY,))
        )
        hosts = tuple(resolve_short_name(h, ns, mesh.domain_suffix) for h in vs.spec.hosts)
        ctx.virtual_services.append(
            VirtualServiceEntry(vs, hosts, gateways, svcs.export_set(vs.spec.export_to))
        )
    for dr in _sorted_kind(snapshot, "DestinationRule"):
        ns = dr.meta.namespace
        entry = DestinationRuleEntry(
            dr, resolve_short_name(dr.spec.host, ns, mesh.domain_suffix), svcs.export_set(dr.spec.export_to)
        )
        ctx.destination_rules.setdefault(ns, []).append(entry)
        ctx.uses_failover_priority |= _has_failover_priority(dr.spec)
    for ns, entries in ctx.destination_rules.items():
        index = ctx.dr_index[ns] = DestinationRuleIndex()
        for entry in entries:
            if entry.host.startswith("*"):
                index.wildcards.append(entry)
            else:
                index.exact.setdefault(entry.host, []).append(entry)
        index.wildcards.sort(key=lambda e: specificity(e.host))
    for sc in _sorted_kind(snapshot, "Sidecar"):
        ctx.sidecars.setdefault(sc.meta.namespace, []).append(sc)
    return ctx
