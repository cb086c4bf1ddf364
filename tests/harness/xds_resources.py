"""Small builders of Envoy resources (xds-protos messages) for tests, before the translator exists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from controlplane.xds import types


def _any(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def cluster(name: str, *, service_name: str = "", timeout_ms: int = 1000) -> cluster_pb2.Cluster:
    """An EDS cluster fed over ADS."""
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        connect_timeout=duration_pb2.Duration(
            seconds=timeout_ms // 1000, nanos=(timeout_ms % 1000) * 1_000_000
        ),
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
            eds_config=ads_source(), service_name=service_name
        ),
    )


def socket_address(host: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=host, port_value=port)
    )


def assignment(
    cluster_name: str, endpoints: Iterable[tuple[str, int]], *, zone: str = "local"
) -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints in one weighted locality (gRPC's xDS client rejects EDS without a locality)."""
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(region="local", zone=zone),
                load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(
                            address=socket_address(host, port)
                        ),
                        load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
                    )
                    for host, port in endpoints
                ],
            )
        ],
    )


def _router_filter() -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(
        name="envoy.filters.http.router", typed_config=_any(router_pb2.Router())
    )


def _hcm(route_name: str, stat_prefix: str) -> hcm_pb2.HttpConnectionManager:
    return hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        rds=hcm_pb2.Rds(config_source=ads_source(), route_config_name=route_name),
        http_filters=[_router_filter()],
    )


def http_listener(name: str, host: str, port: int, route_name: str) -> listener_pb2.Listener:
    """A listener on host:port whose HTTP connection manager gets routes over RDS."""
    return listener_pb2.Listener(
        name=name,
        address=socket_address(host, port),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager",
                        typed_config=_any(_hcm(route_name, name)),
                    )
                ]
            )
        ],
    )


def api_listener(name: str, route_name: str) -> listener_pb2.Listener:
    """What gRPC's xDS client asks for: an api_listener named by the target."""
    return listener_pb2.Listener(
        name=name,
        api_listener=api_listener_pb2.ApiListener(api_listener=_any(_hcm(route_name, name))),
    )


def route_config(
    name: str,
    routes: Sequence[tuple[str, str]],
    *,
    domains: Sequence[str] = ("*",),
    response_headers: dict[str, str] | None = None,
) -> route_pb2.RouteConfiguration:
    """One virtual host; routes are (path prefix, cluster) pairs, first match wins."""
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=f"{name}-vh",
                domains=list(domains),
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix=prefix),
                        route=route_components_pb2.RouteAction(cluster=cluster_name),
                    )
                    for prefix, cluster_name in routes
                ],
            )
        ],
        response_headers_to_add=[
            base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=k, value=v))
            for k, v in (response_headers or {}).items()
        ],
    )


def trust_bundle_secret(name: str, pem: str) -> secret_pb2.Secret:
    return secret_pb2.Secret(
        name=name,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_string=pem)
        ),
    )


def snapshot(
    *,
    clusters: Iterable = (),
    endpoints: Iterable = (),
    listeners: Iterable = (),
    routes: Iterable = (),
    secrets: Iterable = (),
) -> dict[str, list]:
    """The mapping SnapshotCache.set_snapshot takes."""
    return {
        types.CLUSTER: list(clusters),
        types.ENDPOINT: list(endpoints),
        types.LISTENER: list(listeners),
        types.ROUTE: list(routes),
        types.SECRET: list(secrets),
    }


def decode_resources(
    response: discovery_pb2.DiscoveryResponse | discovery_pb2.DeltaDiscoveryResponse,
):
    """name -> decoded message, for SotW or delta responses."""
    from google.protobuf import descriptor_pool, message_factory

    def message_class(type_url: str):
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_url.rsplit("/", 1)[-1])
        return message_factory.GetMessageClass(descriptor)

    out = {}
    if isinstance(response, discovery_pb2.DeltaDiscoveryResponse):
        for r in response.resources:
            cls = message_class(r.resource.type_url)
            out[r.name] = cls.FromString(r.resource.value)
        return out
    for a in response.resources:
        cls = message_class(a.type_url)
        message = cls.FromString(a.value)
        name = message.cluster_name if hasattr(message, "cluster_name") else message.name
        out[name] = message
    return out
