"""What a builder makes for one proxy, and what every builder offers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from controlplane.translate import telemetry
from controlplane.translate.filters import filter_clusters
from controlplane.translate.index.context import PushContext
from controlplane.translate.proxy import Proxy


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """One proxy's resources by name (assignments sorted by cluster name)."""

    clusters: Mapping[str, cluster_pb2.Cluster] = field(default_factory=dict)
    assignments: tuple[endpoint_pb2.ClusterLoadAssignment, ...] = ()
    listeners: Mapping[str, listener_pb2.Listener] = field(default_factory=dict)
    routes: Mapping[str, route_pb2.RouteConfiguration] = field(default_factory=dict)
    # SDS secrets the translation itself serves (DestinationRule credentialName); the
    # workload's own ``default``/``ROOTCA`` come from the runtime's CA instead.
    secrets: Mapping[str, secret_pb2.Secret] = field(default_factory=dict)
    # Filter configs served over ECDS (RBAC, jwt_authn): the listeners only name them.
    extension_configs: Mapping[str, extension_pb2.TypedExtensionConfig] = field(default_factory=dict)


def add_telemetry_and_callouts(
    ctx: PushContext,
    proxy: Proxy,
    listeners: dict[str, listener_pb2.Listener],
    clusters: dict[str, cluster_pb2.Cluster],
) -> None:
    """What every builder adds once its listeners are made: access logs and tracing (Telemetry
    API and mesh defaults) on them, and the callouts: clusters the tracers and the filters (a
    CUSTOM authorizer) send to, where no cluster does."""
    tel = telemetry.proxy_telemetry(ctx, proxy)
    telemetry.decorate_listeners(listeners, tel)
    for c in telemetry.collector_clusters(ctx, tel, clusters):
        clusters.setdefault(c.name, c)
    for c in filter_clusters(ctx, proxy, clusters):
        clusters.setdefault(c.name, c)


@dataclass(frozen=True, slots=True)
class Builder:
    """One kind of proxy: ``build`` makes everything; ``assignments`` only the
    ClusterLoadAssignments (of the given hosts alone, or all with None), for pushes after
    an endpoint-only change."""

    build: Callable[[PushContext, Proxy], ProxyConfig]
    assignments: Callable[
        [PushContext, Proxy, frozenset[str] | None], tuple[endpoint_pb2.ClusterLoadAssignment, ...]
    ]
