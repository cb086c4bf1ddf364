"""Istio's standard metrics on stock Envoy (see ``filters/istio_stats.py``, which places them).

``site_access_logs(site)`` gives the stats access loggers of one chain: the source reporter on
a sidecar's outbound chains and on a gateway's (Istio's gateways report the calls they make into
the mesh as its client does), the destination reporter on a sidecar's inbound ones, with the
Telemetry API's ``metrics`` applied (``plan``, the client's for a gateway). The labels are
Istio's (``labels``), the peer's facts travel in headers (``workload.PEER_HEADERS``), or for
TCP in the server's endpoint metadata (``translate.endpoint_workload``).
"""

from __future__ import annotations

import functools

from envoy.config.accesslog.v3 import accesslog_pb2

from controlplane.translate.filters.base import GATEWAY, INBOUND, OUTBOUND, FilterSite
from controlplane.translate.index.context import PushContext
from controlplane.translate.index.registry import MeshService
from controlplane.translate.istio_metrics.labels import destination_labels, source_labels
from controlplane.translate.istio_metrics.loggers import http_metrics, tcp_metrics
from controlplane.translate.istio_metrics.plan import MetricsPlan, ProxyMetricsPlan, metrics_plan
from controlplane.translate.istio_metrics.workload import WorkloadFacts, proxy_facts
from controlplane.translate.proxy import Proxy


def proxy_metrics(ctx: PushContext, proxy: Proxy) -> ProxyMetricsPlan:
    """What each direction of ``proxy`` reports, once per (namespace, labels that matter)."""
    telemetries = ctx.policies.telemetries
    root = ctx.mesh.root_namespace
    labels = proxy.labels if telemetries.selects_by_labels(root, proxy.namespace) else None
    key = (proxy.namespace, labels)
    cached = ctx.memo.metrics.get(key)
    if cached is not None:
        return cached
    levels = telemetries.applicable(root, proxy.namespace, proxy.label_map).first_per_level()
    plan = metrics_plan([t for t in levels if t is not None], ctx.mesh.telemetry)
    ctx.memo.metrics[key] = plan
    return plan


def _inbound_service(ctx: PushContext, proxy: Proxy, port: int) -> MeshService | None:
    """The one service that sends to ``port`` of this workload, if exactly one does."""
    found = {
        s.hostname: s
        for s in ctx.services_selecting(proxy.namespace, proxy.label_map)
        for p in s.ports
        if port and (p.number == port or p.target_port == port)
    }
    return next(iter(found.values())) if len(found) == 1 else None


def site_access_logs(site: FilterSite) -> list[accesslog_pb2.AccessLog]:
    """The stats access loggers of one chain (none where metrics are off), built once for
    the chains that report alike (the listeners copy them)."""
    plans = proxy_metrics(site.ctx, site.proxy)
    facts = proxy_facts(site.proxy)
    if site.direction == INBOUND:
        plan, service = plans.inbound, _inbound_service(site.ctx, site.proxy, site.port)
    elif site.direction in (OUTBOUND, GATEWAY):
        plan, service = plans.outbound, None
    else:
        return []
    if plan.empty:
        return []
    names = (service.hostname, service.name, service.namespace) if service is not None else None
    return list(_build(site.direction == INBOUND, site.http, facts, names, plan))


@functools.lru_cache(maxsize=4096)
def _build(
    inbound: bool, http: bool, facts: WorkloadFacts, service: tuple[str, str, str] | None, plan: MetricsPlan
) -> tuple[accesslog_pb2.AccessLog, ...]:
    """A pure function of its (hashable) inputs, kept for chains and snapshots that report
    alike; the listeners copy the messages, which are never changed."""
    if inbound:
        labels, peer_root = destination_labels(facts, service, http=http), "downstream_peer"
    else:
        labels, peer_root = source_labels(facts, http=http), "upstream_peer"
    return tuple((http_metrics if http else tcp_metrics)(labels, plan, peer_root))


__all__ = ["proxy_metrics", "site_access_logs"]
