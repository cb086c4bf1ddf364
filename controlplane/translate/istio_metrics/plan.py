"""Which of Istio's metrics a proxy reports, and with which tags: the Telemetry API's
``metrics`` merged over the mesh defaults, per direction (CLIENT: outbound, SERVER: inbound).

As Istio: metrics go to the ``prometheus`` provider, on by default (``defaultProviders.metrics``
may name others; a level's ``providers`` replaces the list). Overrides accumulate from the root
namespace to the workload, in order: ``disabled`` switches a metric (or ALL_METRICS) off or on,
``tagOverrides`` removes a tag or upserts one with a value expression
(``model/metric_expression``). Expressions stock Envoy cannot evaluate, and overrides of custom
metrics (none are defined here), are refused: validation warns with the field path, and they are
not applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controlplane.model.mesh_config import BUILTIN_METRICS, TelemetryDefaults
from controlplane.model.metric_expression import (
    MetricExpression,
    UnsupportedExpression,
    parse_metric_expression,
)
from controlplane.model.telemetry import Telemetry

CLIENT = "CLIENT"
SERVER = "SERVER"

# Istio's metric enum -> the metric name (TCP and HTTP ones; the gRPC message counters need
# Envoy's grpc_stats filter and are not reported).
METRICS: Mapping[str, str] = {
    "REQUEST_COUNT": "istio_requests_total",
    "REQUEST_DURATION": "istio_request_duration_milliseconds",
    "REQUEST_SIZE": "istio_request_bytes",
    "RESPONSE_SIZE": "istio_response_bytes",
    "TCP_OPENED_CONNECTIONS": "istio_tcp_connections_opened_total",
    "TCP_CLOSED_CONNECTIONS": "istio_tcp_connections_closed_total",
    "TCP_SENT_BYTES": "istio_tcp_sent_bytes_total",
    "TCP_RECEIVED_BYTES": "istio_tcp_received_bytes_total",
}
ALL_METRICS = "ALL_METRICS"


@dataclass(frozen=True, slots=True)
class TagChange:
    """Remove ``tag`` (``value`` None) or set it to ``value``."""

    tag: str
    value: MetricExpression | None


@dataclass(frozen=True, slots=True)
class MetricsPlan:
    """One direction: the metrics reported and each one's tag changes, in order."""

    metrics: tuple[str, ...] = tuple(METRICS.values())
    changes: tuple[tuple[str, tuple[TagChange, ...]], ...] = ()

    def tag_changes(self, metric: str) -> tuple[TagChange, ...]:
        return dict(self.changes).get(metric, ())

    @property
    def empty(self) -> bool:
        return not self.metrics


def _applies(mode: str, direction: str) -> bool:
    return mode == "CLIENT_AND_SERVER" or mode == direction


def _direction_plan(levels: list[Telemetry], defaults: TelemetryDefaults, direction: str) -> MetricsPlan:
    providers: tuple[str, ...] = defaults.default_providers.metrics or (BUILTIN_METRICS,)
    enabled = {name: True for name in METRICS.values()}
    changes: dict[str, list[TagChange]] = {name: [] for name in METRICS.values()}
    for telemetry in levels:
        for entry in telemetry.spec.metrics:
            if entry.providers:
                providers = tuple(p.name for p in entry.providers)
            for override in entry.overrides:
                match = override.match
                if match is not None and match.custom_metric is not None:
                    continue  # refused: no custom metrics (validation warns)
                if not _applies(match.mode if match is not None else "CLIENT_AND_SERVER", direction):
                    continue
                which = match.metric if match is not None and match.metric else ALL_METRICS
                names = list(METRICS.values()) if which == ALL_METRICS else [METRICS.get(which, "")]
                names = [n for n in names if n]
                for name in names:
                    if override.disabled is not None:
                        enabled[name] = not override.disabled
                    for tag, tag_override in sorted(override.tag_overrides.items()):
                        change = _tag_change(tag, tag_override.operation, tag_override.value)
                        if change is not None:
                            changes[name].append(change)
    if not any(_is_prometheus(defaults, p) for p in providers):
        return MetricsPlan(metrics=())
    return MetricsPlan(
        metrics=tuple(n for n in METRICS.values() if enabled[n]),
        changes=tuple((n, tuple(c)) for n, c in changes.items() if c and enabled[n]),
    )


def _is_prometheus(defaults: TelemetryDefaults, name: str) -> bool:
    provider = defaults.provider(name)
    return provider is not None and provider.prometheus is not None


def _tag_change(tag: str, operation: str, value: str | None) -> TagChange | None:
    if not tag:
        return None
    if operation == "REMOVE":
        return TagChange(tag, None)
    try:
        return TagChange(tag, parse_metric_expression(value or ""))
    except UnsupportedExpression:
        return None  # refused: validation names the field and says why


@dataclass(frozen=True, slots=True)
class ProxyMetricsPlan:
    outbound: MetricsPlan
    inbound: MetricsPlan


def metrics_plan(levels: list[Telemetry], defaults: TelemetryDefaults) -> ProxyMetricsPlan:
    return ProxyMetricsPlan(
        outbound=_direction_plan(levels, defaults, CLIENT),
        inbound=_direction_plan(levels, defaults, SERVER),
    )
