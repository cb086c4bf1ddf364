"""Where a mesh config extension provider sends (a tracer's collector, an external
authorizer): Istio's LookupCluster on the registry, and the plain cluster a proxy gets when it
has none for the provider's host (outside the registry, or outside its Sidecar scope)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo

from controlplane.model.checks import is_ip
from controlplane.translate import names
from controlplane.translate.endpoints import load_assignment
from controlplane.translate.index.context import PushContext
from controlplane.translate.index.registry import MeshEndpoint, MeshService
from controlplane.translate.pb import any_of, duration

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


@dataclass(frozen=True, slots=True)
class ProviderTarget:
    """The cluster a provider's traffic goes to, and the host:port behind it."""

    cluster: str
    host: str
    port: int
    in_registry: bool  # a registry service: its outbound cluster may already exist
    grpc: bool  # gRPC (OpenTelemetry, ext_authz gRPC) needs HTTP/2 to it


def lookup_service(services: Mapping[str, MeshService], domain_suffix: str, service: str) -> str | None:
    """Istio's LookupCluster: ``<namespace>/<hostname>`` names a service of that namespace, a
    bare hostname any service; a short ``name.namespace`` is tried with ``.svc.<suffix>``."""
    namespace, slash, host = service.rpartition("/")
    for candidate in (host, f"{host}.svc.{domain_suffix}"):
        found = services.get(candidate)
        if found is not None and (not slash or found.namespace == namespace):
            return found.hostname
    return None


def provider_target(ctx: PushContext, service: str, port: int, *, grpc: bool) -> ProviderTarget:
    found = lookup_service(ctx.service_by_host, ctx.mesh.domain_suffix, service)
    host = found or service.rpartition("/")[2]
    return ProviderTarget(names.outbound_cluster(host, port), host, port, found is not None, grpc)


def provider_cluster(ctx: PushContext, target: ProviderTarget) -> cluster_pb2.Cluster:
    """The target's cluster for a proxy without one (shared by every proxy of the snapshot):
    a registry service's endpoints, else the host itself; static for IPs, DNS otherwise."""
    cached = ctx.memo.provider_clusters.get(target.cluster)
    if cached is not None:
        return cached
    endpoints = ctx.service_endpoints(target.host, target.port) if target.in_registry else ()
    endpoints = endpoints or (MeshEndpoint(address=target.host, port=target.port),)
    cluster = cluster_pb2.Cluster(name=target.cluster)
    cluster.connect_timeout.CopyFrom(duration(ctx.mesh.connect_timeout_seconds))
    if all(is_ip(e.address) for e in endpoints):
        cluster.type = cluster_pb2.Cluster.STATIC
    else:
        cluster.type = cluster_pb2.Cluster.STRICT_DNS
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
    cluster.load_assignment.CopyFrom(load_assignment(target.cluster, endpoints))
    if target.grpc:
        options = hpo.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(any_of(options))
    ctx.memo.provider_clusters[target.cluster] = cluster
    return cluster
