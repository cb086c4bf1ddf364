"""Istio's standard metrics as Envoy's stats access logger (``envoy.access_loggers.stats``):
counters and histograms whose tags are format strings, on every HTTP connection manager and
tcp_proxy of a sidecar or gateway. Envoy names them ``envoy_istiocustom_<metric>``; the shipped
Prometheus configuration (``deploy/prometheus``) renames them back to Istio's names.

Histogram buckets are Istio's, set in the bootstrap (``stats_tags.ISTIO_HISTOGRAM_BUCKETS``):
Envoy's stats access logger takes no buckets of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as log_types
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.metric_expression import EnvoyAttribute, LiteralValue, PeerAttribute
from controlplane.translate.istio_metrics.labels import cel, literal
from controlplane.translate.istio_metrics.plan import MetricsPlan, TagChange
from controlplane.translate.istio_metrics.workload import UNKNOWN, endpoint_peer_format, peer_format
from controlplane.translate.pb import any_of

STATS_ACCESS_LOG = "envoy.access_loggers.stats"
# Istio's own stats namespace: Envoy prefixes it (``envoy_istiocustom_istio_requests_total``).
STAT_PREFIX = "istiocustom"

REQUESTS_TOTAL = "istio_requests_total"
REQUEST_DURATION = "istio_request_duration_milliseconds"
REQUEST_BYTES = "istio_request_bytes"
RESPONSE_BYTES = "istio_response_bytes"
TCP_OPENED = "istio_tcp_connections_opened_total"
TCP_CLOSED = "istio_tcp_connections_closed_total"
TCP_SENT = "istio_tcp_sent_bytes_total"
TCP_RECEIVED = "istio_tcp_received_bytes_total"

Config = stats_pb2.Config
_MS = Config.Histogram.Milliseconds
_BYTES = Config.Histogram.Bytes

# Istio's peer fields (``upstream_peer.app``) -> WorkloadFacts fields.
_PEER_FIELDS = {
    "workload": "workload", "namespace": "namespace", "app": "app", "version": "version",
    "service": "canonical_service", "revision": "canonical_revision", "cluster": "cluster",
}


def _value(expression: LiteralValue | EnvoyAttribute | PeerAttribute, peer_root: str, http: bool) -> str:
    if isinstance(expression, LiteralValue):
        return literal(expression.text)
    if isinstance(expression, EnvoyAttribute):
        return cel(expression.path)
    field = _PEER_FIELDS[expression.field]
    if expression.peer != peer_root:  # this proxy's own side
        return UNKNOWN
    if not http:  # no headers: a client reads the server's endpoint, a server knows nothing
        return (endpoint_peer_format(field) if peer_root == "upstream_peer" else None) or UNKNOWN
    return peer_format(field)


def _tags(
    labels: Mapping[str, str], changes: tuple[TagChange, ...], peer_root: str, http: bool
) -> list[stats_pb2.Config.Tag]:
    out = dict(labels)
    for change in changes:
        if change.value is None:
            out.pop(change.tag, None)
        else:
            out[change.tag] = _value(change.value, peer_root, http)
    return [Config.Tag(name=name, value_format=value) for name, value in out.items()]


def _stat(
    name: str, labels: Mapping[str, str], plan: MetricsPlan, peer_root: str, http: bool
) -> stats_pb2.Config.Stat:
    return Config.Stat(name=name, tags=_tags(labels, plan.tag_changes(name), peer_root, http))


def _log(config: stats_pb2.Config, *types: int) -> accesslog_pb2.AccessLog:
    log = accesslog_pb2.AccessLog(name=STATS_ACCESS_LOG, typed_config=any_of(config))
    if types:
        log.filter.log_type_filter.types.extend(types)
    return log


def http_metrics(labels: Mapping[str, str], plan: MetricsPlan, peer_root: str) -> list[accesslog_pb2.AccessLog]:
    """One stats logger per request: the count, its duration and the bytes each way."""
    config = Config(stat_prefix=STAT_PREFIX)
    if REQUESTS_TOTAL in plan.metrics:
        config.counters.add(
            stat=_stat(REQUESTS_TOTAL, labels, plan, peer_root, True), value_fixed=wrappers_pb2.UInt64Value(value=1)
        )
    for name, unit, value in (
        (REQUEST_DURATION, _MS, "%DURATION%"),
        (REQUEST_BYTES, _BYTES, "%DOWNSTREAM_WIRE_BYTES_RECEIVED%"),
        (RESPONSE_BYTES, _BYTES, "%DOWNSTREAM_WIRE_BYTES_SENT%"),
    ):
        if name in plan.metrics:
            config.histograms.add(stat=_stat(name, labels, plan, peer_root, True), unit=unit, value_format=value)
    return [_log(config)] if config.counters or config.histograms else []


def tcp_metrics(labels: Mapping[str, str], plan: MetricsPlan, peer_root: str) -> list[accesslog_pb2.AccessLog]:
    """Opened when the upstream connects (``network.tcp_proxy`` then also logs on connect);
    closed and the bytes each way when the connection ends."""
    logs = []
    if TCP_OPENED in plan.metrics:
        opened = Config(stat_prefix=STAT_PREFIX)
        opened.counters.add(
            stat=_stat(TCP_OPENED, labels, plan, peer_root, False), value_fixed=wrappers_pb2.UInt64Value(value=1)
        )
        logs.append(_log(opened, log_types.TcpUpstreamConnected))
    end = Config(stat_prefix=STAT_PREFIX)
    if TCP_CLOSED in plan.metrics:
        end.counters.add(
            stat=_stat(TCP_CLOSED, labels, plan, peer_root, False), value_fixed=wrappers_pb2.UInt64Value(value=1)
        )
    for name, value in ((TCP_SENT, "%BYTES_SENT%"), (TCP_RECEIVED, "%BYTES_RECEIVED%")):
        if name in plan.metrics:
            end.counters.add(stat=_stat(name, labels, plan, peer_root, False), value_format=value)
    if end.counters:
        logs.append(_log(end, log_types.TcpConnectionEnd))
    return logs

