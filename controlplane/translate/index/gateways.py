"""The gateways part of the index: Istio Gateways, the servers each router proxy merges
from the Gateways that select it, and the VirtualServices bound to each Gateway.

Built from Gateways and VirtualService entries passed in (``build_gateway_index``), not
read from the snapshot alone, so Gateways and VirtualServices derived from other kinds (the
Kubernetes Gateway API, as Istio converts it) are fed in beside the user-written ones.

Istio's rules (pilot/pkg/model/gateway.go ``mergeGateways``):

- a Gateway selects a router whose labels carry its selector (an empty selector selects
  every router); the Gateway's namespace does not matter (PILOT_SCOPE_GATEWAY_TO_NAMESPACE
  is false by default);
- Gateways merge in order (Istio's sortConfigByCreationTime: ``metadata.creationTimestamp``,
  then name, then namespace; one without a creation time comes first): plaintext HTTP
  servers on one port share the route config ``http.<port>``; TLS servers on one port are told apart by SNI,
  and a host a TLS server on that port already claims drops the later server; a server whose
  protocol cannot share the port with the first one there is dropped. Each drop is a
  ``GatewayConflict`` (Istio logs it and counts ``pilot_total_rejected_configs``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controlplane.model.base import config_order
from controlplane.model.gateway import Gateway, Server
from controlplane.model.hosts import (
    host_matches,
    hosts_overlap,
    normalize_host,
    split_namespaced_host,
)
from controlplane.model.labels import selector_matches
from controlplane.translate.index.routing import MESH_GATEWAY, VirtualServiceEntry, exported_to
from controlplane.translate.protocol import is_http, parse_protocol

# The kinds this part is built from (VirtualServices: the entries of the routing part).
GATEWAY_KINDS = frozenset({Gateway.KIND, "VirtualService"})

PASSTHROUGH_MODES = frozenset({"PASSTHROUGH", "AUTO_PASSTHROUGH"})


@dataclass(frozen=True, slots=True)
class GatewayServer:
    """One server of one Gateway, as merged onto a router's port."""

    gateway: str  # "namespace/name"
    namespace: str  # the Gateway's
    index: int  # in spec.servers
    server: Server
    port: int
    protocol: str  # parsed (HTTP, HTTPS, TLS, TCP, ...)
    # (namespace or "*", host) pairs: "." already replaced by the Gateway's namespace
    hosts: tuple[tuple[str, str], ...]
    route_name: str  # RDS name of an HTTP(S) server; "" for TCP/TLS ones

    @property
    def is_tls(self) -> bool:
        """Does the server speak TLS on the wire (not an HTTP server with httpsRedirect)?"""
        return self.server.tls is not None and not is_http(self.protocol)

    @property
    def passthrough(self) -> bool:
        return self.is_tls and self.server.tls is not None and self.server.tls.mode in PASSTHROUGH_MODES

    @property
    def terminates_http(self) -> bool:
        """HTTP, or HTTPS whose TLS ends here: an HTTP connection manager serves it."""
        return bool(self.route_name)

    @property
    def sni_hosts(self) -> tuple[str, ...]:
        """Istio's GetSNIHostsForServer: the hosts without namespaces; none for ``*``."""
        names = sorted({h for _, h in self.hosts})
        return () if "*" in names else tuple(names)


@dataclass(frozen=True, slots=True)
class GatewayConflict:
    """A server Istio drops while merging, and why."""

    gateway: str
    index: int  # in spec.servers
    port: int
    message: str

    def __str__(self) -> str:
        return f"Gateway {self.gateway} spec.servers[{self.index}] (port {self.port}): {self.message}"


@dataclass(frozen=True, slots=True)
class MergedGateway:
    """The servers one router gets, by port in the order they were merged."""

    ports: Mapping[int, tuple[GatewayServer, ...]] = field(default_factory=dict)
    conflicts: tuple[GatewayConflict, ...] = ()
    gateways: tuple[str, ...] = ()  # the selecting Gateways, "namespace/name"


def route_name(server: Server, gateway: Gateway) -> str:
    """Istio's gatewayRDSRouteName: ``http.<port>`` for HTTP servers, one route config per
    HTTPS server that terminates TLS (``https.<port>.<portName>.<gateway>.<namespace>``)."""
    if server.port is None:
        return ""
    protocol = parse_protocol(server.port.protocol)
    bind = f".{server.bind}" if server.bind else ""
    if is_http(protocol):
        return f"http.{server.port.number}{bind}"
    passthrough = server.tls is None or server.tls.mode in PASSTHROUGH_MODES
    if protocol == "HTTPS" and not passthrough:
        meta = gateway.meta
        return f"https.{server.port.number}.{server.port.name}.{meta.name}.{meta.namespace}{bind}"
    return ""


def _server_hosts(server: Server, namespace: str) -> tuple[tuple[str, str], ...]:
    out = []
    for text in server.hosts:
        ns, host = split_namespaced_host(text)
        out.append((namespace if ns == "." else ns, normalize_host(host)))
    return tuple(out)


def merge_gateways(gateways: Iterable[Gateway]) -> MergedGateway:
    """Merge the servers of ``gateways`` (in the order given) as Istio does for one router."""
    ports: dict[int, list[GatewayServer]] = {}
    tls_hosts: dict[int, dict[str, str]] = {}  # port -> (bind|host -> gateway that claimed it)
    route_names: set[str] = set()
    conflicts: list[GatewayConflict] = []
    names = []
    for gw in gateways:
        name = f"{gw.meta.namespace}/{gw.meta.name}"
        names.append(name)
        for index, server in enumerate(gw.spec.servers):
            if server.port is None:
                continue
            entry = GatewayServer(
                gateway=name, namespace=gw.meta.namespace, index=index, server=server, port=server.port.number,
                protocol=parse_protocol(server.port.protocol), hosts=_server_hosts(server, gw.meta.namespace),
                route_name=route_name(server, gw),
            )
            problem = _conflict(entry, ports.get(entry.port, []), tls_hosts.setdefault(entry.port, {}), route_names)
            if problem:
                conflicts.append(GatewayConflict(name, index, entry.port, problem))
                continue
            if entry.is_tls:
                for host in entry.sni_hosts or ("*",):
                    tls_hosts[entry.port][f"{server.bind}|{host}"] = name
            if entry.route_name and not is_http(entry.protocol):
                route_names.add(entry.route_name)
            ports.setdefault(entry.port, []).append(entry)
    return MergedGateway({p: tuple(v) for p, v in sorted(ports.items())}, tuple(conflicts), tuple(names))


def _conflict(
    entry: GatewayServer, existing: list[GatewayServer], tls_hosts: dict[str, str], route_names: set[str]
) -> str:
    """Why Istio drops ``entry``, or "" when it merges onto the port."""
    if entry.is_tls:
        taken = sorted(
            f"{h} (claimed by {tls_hosts[k]})"
            for h in entry.sni_hosts or ("*",)
            if (k := f"{entry.server.bind}|{h}") in tls_hosts
        )
        if taken:
            return "duplicate TLS host names on the port: " + ", ".join(taken)
    same_bind = [s for s in existing if s.server.bind == entry.server.bind]
    if not same_bind:
        return ""
    first = same_bind[0]
    if not first.is_tls:  # the port is plaintext: only HTTP servers merge onto it
        if not (is_http(entry.protocol) and is_http(first.protocol)) or entry.is_tls:
            return f"protocol {entry.protocol} conflicts with {first.protocol} of Gateway {first.gateway} on the port"
        return ""
    if not entry.is_tls:
        return f"a plaintext {entry.protocol} server conflicts with TLS servers of Gateway {first.gateway} on the port"
    if entry.route_name and entry.route_name in route_names:
        return f"route name {entry.route_name} is not unique (HTTPS port names must differ)"
    return ""


@dataclass(frozen=True, slots=True)
class GatewayIndex:
    gateways: tuple[Gateway, ...] = ()  # in Istio's merge order (config_order)
    # "namespace/name" of a Gateway -> the VirtualServices naming it, in Istio's order (as Gateways)
    bound: Mapping[str, tuple[VirtualServiceEntry, ...]] = field(default_factory=dict)
    # merged servers by the set of selecting Gateways; filled on demand, never compared
    _merged: dict[tuple[str, ...], MergedGateway] = field(default_factory=dict, compare=False)

    def selecting(self, labels: Mapping[str, str]) -> tuple[Gateway, ...]:
        return tuple(g for g in self.gateways if selector_matches(g.spec.selector, labels))

    def merged_for(self, labels: Mapping[str, str]) -> MergedGateway:
        """The servers of every Gateway selecting a router with ``labels``."""
        chosen = self.selecting(labels)
        key = tuple(f"{g.meta.namespace}/{g.meta.name}" for g in chosen)
        found = self._merged.get(key)
        if found is None:
            found = self._merged[key] = merge_gateways(chosen)
        return found

    def virtual_services_for(self, gateway: str, proxy_namespace: str) -> tuple[VirtualServiceEntry, ...]:
        """Istio's VirtualServicesForGateway: bound to ``gateway`` and exported to the router's
        namespace."""
        return tuple(
            e for e in self.bound.get(gateway, ()) if exported_to(e.export_to, e.namespace, proxy_namespace)
        )

    def met_conflicts(self) -> tuple[GatewayConflict, ...]:
        """The conflicts the routers translated so far met (merged_for), sorted."""
        return tuple(sorted({c for m in self._merged.values() for c in m.conflicts}, key=str))

    def conflicts(self) -> tuple[GatewayConflict, ...]:
        """Conflicts among Gateways that share a selector (what analyze reports)."""
        groups: dict[tuple[tuple[str, str], ...], list[Gateway]] = {}
        for g in self.gateways:
            groups.setdefault(tuple(sorted(g.spec.selector.items())), []).append(g)
        return tuple(c for members in groups.values() for c in merge_gateways(members).conflicts)


def server_accepts(server: GatewayServer, entry: VirtualServiceEntry) -> tuple[str, ...]:
    """Istio's ``NamesForNamespace(server.hosts, vs.namespace).Intersection(vs.hosts)``: the
    hosts a VirtualService serves on this server (the more specific of each matching pair)."""
    out: list[str] = []
    for ns, server_host in server.hosts:
        if ns not in ("*", entry.namespace):
            continue
        for vs_host in entry.hosts:
            if not hosts_overlap(server_host, vs_host):
                continue
            pick = server_host if host_matches(vs_host, server_host) else vs_host
            if pick not in out:
                out.append(pick)
    return tuple(out)


def build_gateway_index(gateways: Iterable[Gateway], virtual_services: Iterable[VirtualServiceEntry]) -> GatewayIndex:
    ordered = tuple(sorted(gateways, key=lambda g: config_order(g.meta)))
    bound: dict[str, list[VirtualServiceEntry]] = {}
    for entry in sorted(virtual_services, key=lambda e: config_order(e.vs.meta)):
        for name in entry.gateways:
            if name != MESH_GATEWAY:
                bound.setdefault(name, []).append(entry)
    return GatewayIndex(ordered, {k: tuple(v) for k, v in bound.items()})
