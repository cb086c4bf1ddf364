"""The gateway builder: a router proxy (Istio's ingress and egress gateways).

A gateway gets the outbound clusters and endpoints of every service exported to its
namespace, as Istio gives them, and its listeners and routes from the Gateways that select
it (``translate/index/gateways.py`` merges their servers), after Istio's
pilot/pkg/networking/core/gateway.go:

- a listener per server port, ``0.0.0.0_<port>`` (``<bind>_<port>`` with a server ``bind``).
  A router that runs without capture (INTERCEPTION_MODE NONE: a local mesh, one address per
  workload) binds its own first address instead of 0.0.0.0, as a pod has its own IP; the
  name stays Istio's;
- plaintext HTTP servers: one connection manager on RDS ``http.<port>``;
- TLS servers: a filter chain per server, matched by SNI (its hosts; none for ``*``):
  HTTPS that ends TLS on RDS ``https.<port>.<portName>.<gateway>.<namespace>``, TLS that
  ends TLS to the bound tcp routes, PASSTHROUGH a chain per bound tls route match,
  AUTO_PASSTHROUGH a chain per service port and subset, SNI ``outbound_.<port>_.<subset>_.<host>``
  to a cluster of that name (Istio's SNI-DNAT clusters: the caller's own mTLS passes through);
- plaintext TCP servers: the first bound tcp route;
- chains are built at the GATEWAY filter site, so AuthorizationPolicy, RequestAuthentication
  and CUSTOM authorizers selecting the router apply there, and their connection managers and
  tcp_proxies carry the registry's access loggers (Istio's metrics, reported as the source).

A router never gets sidecar listeners.
"""

from __future__ import annotations

from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from controlplane.model.hosts import host_matches
from controlplane.translate import clusters as cb
from controlplane.translate import names
from controlplane.translate.builders.credentials import gateway_credentials, proxy_credentials
from controlplane.translate.builders.outbound import (
    outbound_assignments,
    outbound_clusters,
    outbound_credential_names,
)
from controlplane.translate.builders.output import Builder, ProxyConfig, add_telemetry_and_callouts
from controlplane.translate.filters import (
    FilterSite,
    filter_access_logs,
    http_filter_chain,
    network_filter_chain,
)
from controlplane.translate.filters import network as flt
from controlplane.translate.filters.base import GATEWAY, ExtensionConfigs
from controlplane.translate.gateway_routes import gateway_route_config
from controlplane.translate.gateway_tls import downstream_tls_context, server_credential_names
from controlplane.translate.index.context import PushContext
from controlplane.translate.index.gateways import GatewayServer, server_accepts
from controlplane.translate.index.registry import WILDCARD_ADDRESS
from controlplane.translate.pb import socket_address
from controlplane.translate.proxy import INTERCEPTION_NONE, Proxy
from controlplane.translate.scope import SidecarScope, gateway_scope
from controlplane.translate.tcp_routes import tcp_destinations, tls_chains
from controlplane.translate.transport import forward_client_cert, tls_socket

Listener: TypeAlias = listener_pb2.Listener


class _Build:
    """One router's listeners, route configs, the SDS names they ask for and SNI-DNAT clusters."""

    def __init__(self, ctx: PushContext, proxy: Proxy, scope: SidecarScope, clusters: dict[str, cluster_pb2.Cluster]) -> None:
        self.ctx, self.proxy, self.scope, self.clusters = ctx, proxy, scope, clusters
        self.listeners: dict[str, Listener] = {}
        self.routes: dict[str, route_pb2.RouteConfiguration] = {}
        self.credentials: list[str] = []
        self.extensions = ExtensionConfigs()
        self.dnat: dict[str, cluster_pb2.Cluster] = {}

    def _address(self, bind: str) -> str:
        if bind:
            return bind
        if self.proxy.interception_mode == INTERCEPTION_NONE and self.proxy.ips:
            return self.proxy.ips[0]
        return WILDCARD_ADDRESS

    def listener(self, port: int, servers: tuple[GatewayServer, ...]) -> None:
        bind = servers[0].server.bind
        name = names.listener_name(bind or WILDCARD_ADDRESS, port)
        lst = Listener(name=name, address=socket_address(self._address(bind), port))
        lst.traffic_direction = 2  # OUTBOUND, as Istio's gateway listeners
        if servers[0].is_tls:
            lst.listener_filters.append(flt.tls_inspector())
            taken: set[str] = set()  # "" for the chain without server names
            for server in servers:
                for chain in self._tls_chains(server):
                    # Envoy refuses two chains matching one name: the first keeps it (Istio's
                    # CheckDuplicates), a chain left with no name of its own goes.
                    names_ = list(chain.filter_chain_match.server_names) or [""]
                    fresh = [n for n in names_ if n not in taken]
                    if not fresh:
                        continue
                    taken.update(fresh)
                    del chain.filter_chain_match.server_names[:]
                    chain.filter_chain_match.server_names.extend(n for n in fresh if n)
                    lst.filter_chains.append(chain)
        elif servers[0].terminates_http:
            lst.filter_chains.append(self._http_chain(servers[0], servers))
        else:
            filters = self._tcp_filters(servers[0])
            if filters:
                lst.filter_chains.add().filters.extend(filters)
        if lst.filter_chains:  # Istio leaves out a listener with nothing to serve
            self.listeners[name] = lst

    def _site(self, server: GatewayServer, http: bool) -> FilterSite:
        return FilterSite(self.ctx, self.proxy, GATEWAY, server.port, http=http, extensions=self.extensions)

    def _http_chain(self, server: GatewayServer, sharing: tuple[GatewayServer, ...]) -> lc.FilterChain:
        site = self._site(server, http=True)
        hcm = flt.http_connection_manager(
            f"outbound_{WILDCARD_ADDRESS}_{server.port}", http_filter_chain(site), rds_name=server.route_name,
            path_normalization=self.ctx.mesh.path_normalization, use_remote_address=True,
            access_logs=filter_access_logs(site),
        )
        chain = lc.FilterChain()
        chain.filters.extend([*network_filter_chain(site), forward_client_cert(hcm)])
        if server.route_name not in self.routes:
            self.routes[server.route_name] = gateway_route_config(
                self.ctx, self.proxy, server.route_name, tuple(s for s in sharing if s.route_name == server.route_name)
            )
        return chain

    def _tcp_filters(self, server: GatewayServer) -> list[lc.Filter]:
        """The first tcp route of a VirtualService bound to the server's Gateway."""
        for entry in self.ctx.gateways.virtual_services_for(server.gateway, self.proxy.namespace):
            if not server_accepts(server, entry):
                continue
            dests = tcp_destinations(
                entry, self.ctx, server.port, self.proxy.label_map, self.proxy.namespace, gateway=server.gateway
            )
            if dests:
                site = self._site(server, http=False)
                return [
                    *network_filter_chain(site),
                    flt.tcp_proxy(dests[0][0], weighted=dests, access_logs=filter_access_logs(site)),
                ]
        return []

    def _tls_chains(self, server: GatewayServer) -> list[lc.FilterChain]:
        tls = server.server.tls
        assert tls is not None
        if tls.mode == "AUTO_PASSTHROUGH":
            return self._auto_passthrough(server)
        if tls.mode == "PASSTHROUGH":
            out = []
            for entry in self.ctx.gateways.virtual_services_for(server.gateway, self.proxy.namespace):
                if not server_accepts(server, entry):
                    continue
                for sni, dests in tls_chains(
                    entry, self.ctx, server.port, self.proxy.label_map, self.proxy.namespace, gateway=server.gateway
                ):
                    chain = lc.FilterChain()
                    chain.filter_chain_match.server_names.extend(sni)
                    site = self._site(server, http=False)
                    chain.filters.extend([
                        *network_filter_chain(site),
                        flt.tcp_proxy(dests[0][0], weighted=dests, access_logs=filter_access_logs(site)),
                    ])
                    out.append(chain)
            return out
        self.credentials.extend(server_credential_names(tls))
        context = downstream_tls_context(
            tls, trust_domain=self.ctx.mesh.trust_domain, mesh_alpn=not server.terminates_http
        )
        if server.terminates_http:
            chain = self._http_chain(server, (server,))
        else:
            filters = self._tcp_filters(server)
            if not filters:
                return []
            chain = lc.FilterChain()
            chain.filters.extend(filters)
        chain.filter_chain_match.server_names.extend(server.sni_hosts)
        chain.transport_socket.CopyFrom(tls_socket(context))
        return [chain]

    def _auto_passthrough(self, server: GatewayServer) -> list[lc.FilterChain]:
        """A chain per service port (and subset) the server's hosts cover, to the SNI-DNAT
        cluster named as the SNI the caller's sidecar sets (``outbound_.port_.subset_.host``)."""
        out = []
        logs = filter_access_logs(self._site(server, http=False))  # Istio's gateway TCP stats here too
        patterns = [h for _, h in server.hosts]
        by_host: dict[str, list[tuple[int, str, cluster_pb2.Cluster]]] = {}
        for name, cluster in self.clusters.items():
            parsed = names.parse_cluster_name(name)
            if parsed is not None and parsed[0] == "outbound":
                by_host.setdefault(parsed[3], []).append((parsed[1], parsed[2], cluster))
        for service in self.scope.services:
            if service.mesh_external or not any(host_matches(p, service.hostname) for p in patterns):
                continue
            for port, subset, cluster in by_host.get(service.hostname, ()):
                sni = names.mtls_sni(service.hostname, port, subset)
                self.dnat[sni] = _dnat_cluster(cluster, sni)
                chain = lc.FilterChain()
                chain.filter_chain_match.server_names.append(sni)
                chain.filters.append(flt.tcp_proxy(sni, cluster=sni, access_logs=logs))
                out.append(chain)
        return out


def _dnat_cluster(cluster: cluster_pb2.Cluster, name: str) -> cluster_pb2.Cluster:
    """A copy of an outbound cluster under its SNI name, without TLS of its own (the bytes
    are the caller's TLS); EDS clusters keep asking for the original's endpoints."""
    out = cluster_pb2.Cluster()
    out.CopyFrom(cluster)
    out.name = name
    out.ClearField("transport_socket")
    out.ClearField("transport_socket_matches")
    if out.HasField("load_assignment"):
        out.load_assignment.cluster_name = name
    return out


def build_gateway(ctx: PushContext, proxy: Proxy) -> ProxyConfig:
    scope = gateway_scope(ctx, proxy)
    clusters = outbound_clusters(ctx, proxy, scope)
    blackhole = cb.blackhole_cluster(ctx.mesh)
    clusters[blackhole.name] = blackhole
    build = _Build(ctx, proxy, scope, clusters)
    for port, servers in ctx.gateways.merged_for(proxy.label_map).ports.items():
        by_bind: dict[str, list[GatewayServer]] = {}
        for server in servers:
            by_bind.setdefault(server.server.bind, []).append(server)
        for group in by_bind.values():
            build.listener(port, tuple(group))
    clusters.update(build.dnat)
    add_telemetry_and_callouts(ctx, proxy, build.listeners, clusters)
    secrets = proxy_credentials(ctx, proxy, outbound_credential_names(ctx, proxy, scope))
    secrets.update(gateway_credentials(ctx, proxy, tuple(sorted(set(build.credentials)))))
    return ProxyConfig(
        clusters=clusters,
        assignments=outbound_assignments(ctx, proxy, scope),
        listeners=build.listeners,
        routes=build.routes,
        secrets=secrets,
        extension_configs=build.extensions.resources(),
    )


def gateway_assignments(
    ctx: PushContext, proxy: Proxy, hosts: frozenset[str] | None = None
) -> tuple[endpoint_pb2.ClusterLoadAssignment, ...]:
    return outbound_assignments(ctx, proxy, gateway_scope(ctx, proxy), hosts)


GATEWAY_BUILDER = Builder(build=build_gateway, assignments=gateway_assignments)
