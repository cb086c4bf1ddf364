"""A router's RouteConfigurations: one per Gateway route name (``http.<port>``, or
``https.<port>.<portName>.<gateway>.<namespace>`` per HTTPS server), after Istio's
buildGatewayHTTPRouteConfig (pilot/pkg/networking/core/gateway.go).

Each VirtualService bound to a server's Gateway (and exported to the router's namespace)
contributes its http routes, built by the sidecar's own route builder for that Gateway
(``routes.http_routes``), to a virtual host per host it shares with the server (the more
specific of the two, ``host:port`` as Istio names it, the host as its only domain). A host no
virtual host serves gets Envoy's 404; a route config with no virtual host at all gets Istio's
``blackhole:<port>`` (domains ``*``, no routes: 404 too). ``httpsRedirect`` makes every host
of the server answer plain HTTP with a 301 to https.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from controlplane.translate.index.context import PushContext, VirtualServiceEntry
from controlplane.translate.index.gateways import GatewayServer, server_accepts
from controlplane.translate.names import virtual_host_name
from controlplane.translate.proxy import Proxy
from controlplane.translate.routes import RouteInputs, http_routes


def _routes(
    ctx: PushContext, proxy: Proxy, server: GatewayServer, entry: VirtualServiceEntry
) -> list[rc.Route]:
    """The routes of one VirtualService on one Gateway and port, shared by the router's
    route configs that need them (memoized per snapshot)."""
    key = (server.gateway, entry.vs.key, server.port, proxy.namespace, proxy.labels)
    cached = ctx.memo.gateway_routes.get(key)
    if cached is None:
        inputs = RouteInputs(ctx, proxy, ctx.mesh.outbound_traffic_policy, gateway=server.gateway)
        cached = ctx.memo.gateway_routes[key] = tuple(http_routes(entry, inputs, server.port))
    return list(cached)


def gateway_route_config(
    ctx: PushContext, proxy: Proxy, name: str, servers: tuple[GatewayServer, ...]
) -> route_pb2.RouteConfiguration:
    """The RouteConfiguration ``name`` for the servers that share it (in merge order)."""
    vhosts: dict[str, rc.VirtualHost] = {}
    for server in servers:
        redirect = server.server.tls is not None and server.server.tls.https_redirect
        for entry in ctx.gateways.virtual_services_for(server.gateway, proxy.namespace):
            hosts = server_accepts(server, entry)
            if not hosts:
                continue
            routes = _routes(ctx, proxy, server, entry)
            for host in hosts:
                vh = vhosts.get(host)
                if vh is None:
                    vh = vhosts[host] = rc.VirtualHost(
                        name=virtual_host_name(host, server.port), domains=[host], include_request_attempt_count=True
                    )
                vh.routes.extend(routes)
                if redirect:
                    vh.require_tls = rc.VirtualHost.ALL
        if redirect:
            for _, host in server.hosts:
                vh = vhosts.get(host)
                if vh is None:
                    vh = vhosts[host] = rc.VirtualHost(
                        name=virtual_host_name(host, server.port), domains=[host], include_request_attempt_count=True
                    )
                vh.require_tls = rc.VirtualHost.ALL
    config = route_pb2.RouteConfiguration(name=name, ignore_port_in_host_matching=True)
    config.validate_clusters.value = False
    if not vhosts:
        port = servers[0].port if servers else 0
        config.virtual_hosts.add(name=virtual_host_name("blackhole", port), domains=["*"])
        return config
    config.virtual_hosts.extend(vhosts[h] for h in sorted(vhosts))
    return config
