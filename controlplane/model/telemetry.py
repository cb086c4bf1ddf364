"""telemetry.istio.io Telemetry: metrics, access logs and tracing per workload."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.common import PolicyTargetReference, WorkloadSelector
from controlplane.model.frozen import EMPTY

WorkloadMode = Literal["CLIENT_AND_SERVER", "CLIENT", "SERVER"]
IstioMetric = Literal[
    "ALL_METRICS",
    "REQUEST_COUNT",
    "REQUEST_DURATION",
    "REQUEST_SIZE",
    "RESPONSE_SIZE",
    "TCP_OPENED_CONNECTIONS",
    "TCP_CLOSED_CONNECTIONS",
    "TCP_SENT_BYTES",
    "TCP_RECEIVED_BYTES",
    "GRPC_REQUEST_MESSAGES",
    "GRPC_RESPONSE_MESSAGES",
]


@dataclass(frozen=True, slots=True)
class ProviderRef:
    name: str = ""


@dataclass(frozen=True, slots=True)
class TracingSelector:
    mode: WorkloadMode = "CLIENT_AND_SERVER"


@dataclass(frozen=True, slots=True)
class LiteralTag:
    value: str = ""


@dataclass(frozen=True, slots=True)
class EnvironmentTag:
    name: str = ""
    default_value: str = ""


@dataclass(frozen=True, slots=True)
class RequestHeaderTag:
    name: str = ""
    default_value: str = ""


@dataclass(frozen=True, slots=True)
class CustomTag:
    """Exactly one of ``literal``, ``environment``, ``header``."""

    literal: LiteralTag | None = None
    environment: EnvironmentTag | None = None
    header: RequestHeaderTag | None = None


@dataclass(frozen=True, slots=True)
class Tracing:
    match: TracingSelector | None = None
    providers: tuple[ProviderRef, ...] = ()
    random_sampling_percentage: float | None = None
    disable_span_reporting: bool | None = None
    custom_tags: Mapping[str, CustomTag] = field(default=EMPTY)
    use_request_id_for_trace_sampling: bool | None = None
    enable_istio_tags: bool | None = None


@dataclass(frozen=True, slots=True)
class MetricSelector:
    """Either ``metric`` (a standard Istio metric) or ``custom_metric``."""

    metric: IstioMetric | None = None
    custom_metric: str | None = None
    mode: WorkloadMode = "CLIENT_AND_SERVER"


@dataclass(frozen=True, slots=True)
class TagOverride:
    operation: Literal["UPSERT", "REMOVE"] = "UPSERT"
    value: str | None = None


@dataclass(frozen=True, slots=True)
class MetricsOverrides:
    match: MetricSelector | None = None
    disabled: bool | None = None
    tag_overrides: Mapping[str, TagOverride] = field(default=EMPTY)


@dataclass(frozen=True, slots=True)
class Metrics:
    providers: tuple[ProviderRef, ...] = ()
    overrides: tuple[MetricsOverrides, ...] = ()
    reporting_interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class AccessLogSelector:
    mode: WorkloadMode = "CLIENT_AND_SERVER"


@dataclass(frozen=True, slots=True)
class AccessLogFilter:
    expression: str = ""


@dataclass(frozen=True, slots=True)
class AccessLogging:
    match: AccessLogSelector | None = None
    providers: tuple[ProviderRef, ...] = ()
    disabled: bool | None = None
    filter: AccessLogFilter | None = None


@dataclass(frozen=True, slots=True)
class TelemetrySpec:
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    tracing: tuple[Tracing, ...] = ()
    metrics: tuple[Metrics, ...] = ()
    access_logging: tuple[AccessLogging, ...] = ()


@dataclass(frozen=True, slots=True)
class Telemetry(Resource):
    KIND: ClassVar[str] = "Telemetry"
    meta: ObjectMeta
    spec: TelemetrySpec
