"""Entry points: push_context() once per snapshot; translate() and endpoints() per proxy,
dispatching on the proxy's kind; group_key() for proxies that share one result."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from controlplane.model.mesh import MeshConfig
from controlplane.translate.builders import BUILDERS, Builder
from controlplane.translate.envoy_filter.apply import apply_envoy_filters
from controlplane.translate.errors import TranslationError
from controlplane.translate.index.context import PushContext, build_push_context
from controlplane.translate.index.service_index import Snapshot
from controlplane.translate.proxy import INTERCEPTION_NONE, Locality, Proxy
from controlplane.translate.scope import sidecar_scope

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
EXTENSION_CONFIG_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"


def push_context(snapshot: Snapshot, mesh: MeshConfig) -> PushContext:
    """Build once per snapshot and share among all proxies."""
    return build_push_context(snapshot, mesh)


def _ctx(inputs: PushContext | Snapshot, mesh: MeshConfig | None) -> PushContext:
    if isinstance(inputs, PushContext):
        return inputs
    return build_push_context(inputs, mesh or MeshConfig())


def _builder(proxy: Proxy) -> Builder:
    builder = BUILDERS.get(proxy.kind)
    if builder is None:
        raise TranslationError(f"proxy {proxy.id!r}: no builder for kind {proxy.kind!r}")
    return builder


def translate(
    inputs: PushContext | Snapshot, proxy: Proxy, mesh: MeshConfig | None = None
) -> dict[str, list[Message]]:
    """Clusters, endpoints, listeners and routes for one proxy, each list sorted by name,
    the SDS secrets of its DestinationRules' ``credentialName`` when it is given any, and the
    filter configs its listeners get over ECDS (RBAC, jwt_authn) when they name any.

    ``inputs`` is a PushContext (preferred: build it once per snapshot with
    push_context()) or a store Snapshot.
    """
    ctx = _ctx(inputs, mesh)
    out = apply_envoy_filters(ctx, proxy, _builder(proxy).build(ctx, proxy))
    resources = {
        CLUSTER_TYPE: [out.clusters[k] for k in sorted(out.clusters)],
        ENDPOINT_TYPE: list(out.assignments),
        LISTENER_TYPE: [out.listeners[k] for k in sorted(out.listeners)],
        ROUTE_TYPE: [out.routes[k] for k in sorted(out.routes)],
    }
    if out.secrets:  # credentialName secrets, only when some are served
        resources[SECRET_TYPE] = [out.secrets[k] for k in sorted(out.secrets)]
    if out.extension_configs:  # only where some filter is served over ECDS
        configs = out.extension_configs
        resources[EXTENSION_CONFIG_TYPE] = [configs[k] for k in sorted(configs)]
    return resources


def endpoints(
    inputs: PushContext | Snapshot,
    proxy: Proxy,
    mesh: MeshConfig | None = None,
    hosts: frozenset[str] | None = None,
) -> list[Message]:
    """ClusterLoadAssignments for every EDS cluster of ``proxy`` (of the services ``hosts``
    alone when given), sorted by cluster name.

    The EDS-only path: after an endpoint-only change the runtime calls this alone (with the
    hosts whose endpoints changed); cluster, listener and route output cannot have changed.
    """
    ctx = _ctx(inputs, mesh)
    return list(_builder(proxy).assignments(ctx, proxy, hosts))


@dataclass(frozen=True, slots=True)
class GroupKey:
    """Every field of a proxy that its translation reads: proxies with equal keys get
    identical output from translate() and endpoints()."""

    kind: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    service_account: str
    interception_mode: str
    locality: Locality
    # Only where listeners bind the proxy's own addresses (no capture, or a Sidecar ingress
    # that binds: captureMode NONE binds ips[0]); captured sidecars of a workload share.
    ips: tuple[str, ...]
    # Only where a selecting Service names its targetPort, resolved on the proxy's own Pod.
    pod_name: str
    has_certificate: bool
    # Istio's metrics name the proxy's own workload in its listeners (istio_metrics).
    workload_name: str = ""
    # Only where some EnvoyFilter patch matches on the proxy's version (ISTIO_VERSION).
    istio_version: str = ""


def group_key(inputs: PushContext | Snapshot, proxy: Proxy) -> GroupKey:
    ctx = _ctx(inputs, None)
    binds_ips = proxy.interception_mode == INTERCEPTION_NONE or (
        proxy.kind == "sidecar" and bool(sidecar_scope(ctx, proxy).ingress)
    )
    named_ports = any(
        isinstance(p.target_port, str)
        for s in ctx.services_selecting(proxy.namespace, proxy.label_map)
        for p in s.ports
    )
    return GroupKey(
        kind=proxy.kind,
        namespace=proxy.namespace,
        labels=proxy.labels,
        service_account=proxy.service_account,
        interception_mode=proxy.interception_mode,
        locality=proxy.locality,
        ips=proxy.ips if binds_ips else (),
        pod_name=proxy.pod_name if named_ports else "",
        has_certificate=proxy.has_certificate,
        workload_name=proxy.workload_name,
        istio_version=proxy.istio_version if ctx.envoy_filters.uses_proxy_version else "",
    )
