"""Cluster builders: outbound per service port and subset, inbound, passthrough, blackhole."""

from __future__ import annotations

import functools
from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import struct_pb2

from controlplane.model.destination_rule import ConnectionPoolSettings, DestinationRuleSpec, Subset
from controlplane.model.mesh import MeshConfig
from controlplane.translate import destination_policy as dp
from controlplane.translate import names
from controlplane.translate.endpoints import load_assignment
from controlplane.translate.index.registry import (
    DNS,
    DNS_ROUND_ROBIN,
    PASSTHROUGH,
    MeshEndpoint,
    MeshService,
    ServicePort,
)
from controlplane.translate.pb import ads_source, duration
from controlplane.translate.protocol import is_http, is_http2
from controlplane.translate.transport import apply_upstream_proxy_protocol, apply_upstream_tls

Cluster: TypeAlias = cluster_pb2.Cluster


def _base(name: str, mesh: MeshConfig) -> Cluster:
    c = Cluster(name=name)
    c.connect_timeout.CopyFrom(duration(mesh.connect_timeout_seconds))
    return c


def outbound_cluster(
    service: MeshService,
    port: ServicePort,
    mesh: MeshConfig,
    *,
    subset: Subset | None = None,
    rule: DestinationRuleSpec | None = None,
    endpoints: list[MeshEndpoint] | None = None,
    service_accounts: tuple[str, ...] = (),
    auto_mtls: bool = False,
) -> Cluster:
    """``outbound|<port>|<subset>|<host>``; ``rule`` is a DestinationRule spec or None;
    ``endpoints`` (already filtered by subset) are inlined for DNS clusters; ``auto_mtls``:
    see transport.apply_upstream_tls."""
    subset_name = subset.name if subset is not None else ""
    name = names.outbound_cluster(service.hostname, port.number, subset_name)
    c = _base(name, mesh)
    if service.resolution in (DNS, DNS_ROUND_ROBIN):
        c.type = Cluster.STRICT_DNS if service.resolution == DNS else Cluster.LOGICAL_DNS
        c.dns_lookup_family = Cluster.V4_ONLY
        c.respect_dns_ttl = True
        eps = list(endpoints or ())
        if service.resolution == DNS_ROUND_ROBIN:
            eps = eps[:1]
        c.load_assignment.CopyFrom(load_assignment(name, eps))
    elif service.resolution == PASSTHROUGH:
        c.type = Cluster.ORIGINAL_DST
    else:
        c.type = Cluster.EDS
        c.eds_cluster_config.eds_config.CopyFrom(ads_source())
        c.eds_cluster_config.service_name = name
    policy = dp.effective_policy(rule, port.number, subset)
    dp.apply_load_balancer(c, policy.load_balancer)
    if c.type == Cluster.ORIGINAL_DST:
        c.lb_policy = Cluster.CLUSTER_PROVIDED
    dp.apply_connection_pool(c, policy.connection_pool, is_http2(port.protocol), is_http(port.protocol),
                             policy.retry_budget)
    dp.apply_outlier_detection(c, policy.outlier_detection)
    apply_upstream_tls(
        c, policy.tls, service.hostname, port.number, subset_name, mesh,
        service_accounts=service_accounts, auto_mtls=auto_mtls,
    )
    apply_upstream_proxy_protocol(c, policy.proxy_protocol)
    _service_metadata(c, service)
    return c


def _service_metadata(c: Cluster, service: MeshService) -> None:
    """Istio's ``istio`` cluster metadata: the service the cluster belongs to (the stats
    loggers read ``destination_service`` from it)."""
    c.metadata.CopyFrom(_istio_metadata(service.hostname, service.name, service.namespace))


@functools.lru_cache(maxsize=65536)
def _istio_metadata(host: str, name: str, namespace: str) -> base_pb2.Metadata:
    """Built once per service (every port and subset cluster shares it); never mutated."""
    entry = struct_pb2.Struct()
    entry.update({"host": host, "name": name, "namespace": namespace})
    metadata = base_pb2.Metadata()
    metadata.filter_metadata["istio"].fields["services"].list_value.values.add().struct_value.CopyFrom(entry)
    return metadata


def inbound_cluster(
    port: int, address: str, target_port: int, mesh: MeshConfig, http2: bool = False, *,
    pool: ConnectionPoolSettings | None = None, http: bool = False,
) -> Cluster:
    """``inbound|<port>||``: a static cluster to the app behind this sidecar; ``pool`` is the
    Sidecar's connection pool for the port (its ingress listener's, else ``inboundConnectionPool``)."""
    name = names.inbound_cluster(port)
    c = _base(name, mesh)
    c.type = Cluster.STATIC
    c.lb_policy = Cluster.ROUND_ROBIN
    c.circuit_breakers.CopyFrom(dp.default_circuit_breakers())
    ep = MeshEndpoint(address=address, port=target_port)
    c.load_assignment.CopyFrom(load_assignment(name, [ep]))
    if pool is not None:
        dp.apply_connection_pool(c, pool, http2, http)
    elif http2:
        from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo

        from controlplane.translate.pb import any_of

        opts = hpo.HttpProtocolOptions()
        opts.explicit_http_config.http2_protocol_options.SetInParent()
        c.typed_extension_protocol_options[dp.HTTP_PROTOCOL_OPTIONS].CopyFrom(any_of(opts))
    return c


def passthrough_cluster(mesh: MeshConfig, name: str = names.PASSTHROUGH_CLUSTER) -> Cluster:
    c = _base(name, mesh)
    c.type = Cluster.ORIGINAL_DST
    c.lb_policy = Cluster.CLUSTER_PROVIDED
    c.circuit_breakers.CopyFrom(dp.default_circuit_breakers())
    return c


def blackhole_cluster(mesh: MeshConfig) -> Cluster:
    c = _base(names.BLACKHOLE_CLUSTER, mesh)
    c.type = Cluster.STATIC
    c.load_assignment.CopyFrom(endpoint_pb2.ClusterLoadAssignment(cluster_name=names.BLACKHOLE_CLUSTER))
    return c
