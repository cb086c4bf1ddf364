"""The gateway builder: a router proxy (Istio's ingress and egress gateways).

A gateway gets the outbound clusters and endpoints of every service exported to its
namespace, as Istio gives them; its listeners and routes come from the Gateway resources
that select it (the gateway issue adds them here). A router never gets sidecar listeners.
"""

from __future__ import annotations

from envoy.config.endpoint.v3 import endpoint_pb2

from controlplane.translate import clusters as cb
from controlplane.translate.builders.outbound import outbound_assignments, outbound_clusters
from controlplane.translate.builders.output import Builder, ProxyConfig
from controlplane.translate.index.context import PushContext
from controlplane.translate.proxy import Proxy
from controlplane.translate.scope import gateway_scope


def build_gateway(ctx: PushContext, proxy: Proxy) -> ProxyConfig:
    scope = gateway_scope(ctx, proxy)
    clusters = outbound_clusters(ctx, proxy, scope)
    blackhole = cb.blackhole_cluster(ctx.mesh)
    clusters[blackhole.name] = blackhole
    return ProxyConfig(clusters=clusters, assignments=outbound_assignments(ctx, proxy, scope))


def gateway_assignments(ctx: PushContext, proxy: Proxy) -> tuple[endpoint_pb2.ClusterLoadAssignment, ...]:
    return outbound_assignments(ctx, proxy, gateway_scope(ctx, proxy))


GATEWAY_BUILDER = Builder(build=build_gateway, assignments=gateway_assignments)
