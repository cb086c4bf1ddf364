"""Access logs, tracing and collector clusters for one proxy, with stock Envoy only.

``proxy_telemetry(ctx, proxy)`` resolves what applies (telemetry_policy.py) into Envoy
messages once per (namespace, labels that matter) per snapshot. ``decorate_listeners`` then
adds them to every HTTP connection manager and tcp_proxy, by the listener's direction
(outbound: CLIENT, inbound: SERVER), and ``collector_clusters`` adds the clusters the
tracers send to. With nothing configured both are no-ops, so output stays unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import grpc_service_pb2, http_service_pb2, http_uri_pb2
from envoy.config.core.v3 import substitution_format_string_pb2 as sfs_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.trace.v3 import http_tracer_pb2, opentelemetry_pb2, zipkin_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as log_types
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.tracing.v3 import custom_tag_pb2
from google.protobuf.message import Message

from controlplane.model.canonical import canonical_name
from controlplane.model.mesh_config import BUILTIN_ACCESS_LOG, ExtensionProvider, TelemetryDefaults
from controlplane.model.telemetry import CustomTag
from controlplane.translate.filters import network as flt
from controlplane.translate.index.context import PushContext
from controlplane.translate.pb import any_of, duration
from controlplane.translate.providers import ProviderTarget, provider_cluster, provider_target
from controlplane.translate.proxy import Proxy
from controlplane.translate.telemetry_policy import (
    CLIENT,
    SERVER,
    AccessLogPlan,
    DirectionPlan,
    TracingPlan,
    telemetry_plan,
)

FILE_ACCESS_LOG = "envoy.access_loggers.file"
CEL_FILTER = "envoy.access_loggers.extension_filters.cel"
ZIPKIN = "envoy.tracers.zipkin"
OPENTELEMETRY = "envoy.tracers.opentelemetry"
INBOUND, OUTBOUND = 1, 2  # core.v3.TrafficDirection
TCP_UPSTREAM_CONNECTED = log_types.TcpUpstreamConnected

# Istio's default text format (pilot/pkg/model/telemetry_logging.go), every operator known to
# Envoy 1.40 (UPSTREAM_CLUSTER_RAW: the cluster name without alt_stat_name).
ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)
# Istio's EnvoyJSONLogFormatIstio.
ISTIO_JSON_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%",
    "route_name": "%ROUTE_NAME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}


@dataclass(frozen=True, slots=True)
class DirectionConfig:
    access_logs: tuple[accesslog_pb2.AccessLog, ...] = ()
    tracing: hcm_pb2.HttpConnectionManager.Tracing | None = None
    # On the listener itself, for connections no filter chain takes (response flag NR).
    listener_logs: tuple[accesslog_pb2.AccessLog, ...] = ()


@dataclass(frozen=True, slots=True)
class ProxyTelemetry:
    outbound: DirectionConfig
    inbound: DirectionConfig
    collectors: tuple[ProviderTarget, ...]

    def for_listener(self, listener: listener_pb2.Listener) -> DirectionConfig:
        return self.inbound if listener.traffic_direction == INBOUND else self.outbound


# --- access logs ---------------------------------------------------------------------------


def _text(fmt: str) -> sfs_pb2.SubstitutionFormatString:
    out = sfs_pb2.SubstitutionFormatString()
    out.text_format_source.inline_string = fmt if fmt.endswith("\n") else fmt + "\n"
    return out


def _json(fields: Mapping[str, Any]) -> sfs_pb2.SubstitutionFormatString:
    out = sfs_pb2.SubstitutionFormatString()
    out.json_format.update(json.loads(json.dumps(fields)))  # FrozenDict/tuples -> plain JSON
    return out


def _mesh_format(defaults: TelemetryDefaults) -> sfs_pb2.SubstitutionFormatString:
    """accessLogEncoding/accessLogFormat, as Istio's FileAccessLogFromMeshConfig."""
    if defaults.access_log_encoding == "JSON":
        return _json(
            json.loads(defaults.access_log_format)
            if defaults.access_log_format
            else ISTIO_JSON_FORMAT
        )
    return _text(defaults.access_log_format or ISTIO_TEXT_FORMAT)


def _provider_format(
    provider: ExtensionProvider, defaults: TelemetryDefaults
) -> sfs_pb2.SubstitutionFormatString:
    if provider.name == BUILTIN_ACCESS_LOG:
        return _mesh_format(defaults)
    fmt = provider.envoy_file_access_log.log_format if provider.envoy_file_access_log else None
    if fmt is not None and isinstance(fmt.labels, Mapping):  # validated as an object
        return _json(fmt.labels or ISTIO_JSON_FORMAT)
    return _text(fmt.text if fmt is not None and fmt.text else ISTIO_TEXT_FORMAT)


def access_log(plan: AccessLogPlan, defaults: TelemetryDefaults) -> accesslog_pb2.AccessLog:
    if plan.provider is None:
        path, fmt = defaults.access_log_file, _mesh_format(defaults)
    else:
        assert plan.provider.envoy_file_access_log is not None
        path = plan.provider.envoy_file_access_log.path or "/dev/stdout"
        fmt = _provider_format(plan.provider, defaults)
    config = file_pb2.FileAccessLog(path=path, log_format=fmt)
    log = accesslog_pb2.AccessLog(name=FILE_ACCESS_LOG, typed_config=any_of(config))
    if plan.filter_expression:
        log.filter.extension_filter.CopyFrom(
            accesslog_pb2.ExtensionFilter(
                name=CEL_FILTER,
                typed_config=any_of(cel_pb2.ExpressionFilter(expression=plan.filter_expression)),
            )
        )
    return log


# --- tracing -------------------------------------------------------------------------------


def _collector(ctx: PushContext, provider: ExtensionProvider) -> ProviderTarget:
    spec = provider.zipkin or provider.opentelemetry
    assert spec is not None
    grpc = provider.opentelemetry is not None and provider.opentelemetry.http is None
    return provider_target(ctx, spec.service, spec.port, grpc=grpc)


def _custom_tag(tag: str, value: CustomTag) -> custom_tag_pb2.CustomTag:
    out = custom_tag_pb2.CustomTag(tag=tag)
    if value.literal is not None:
        out.literal.value = value.literal.value
    elif value.environment is not None:
        out.environment.name = value.environment.name
        out.environment.default_value = value.environment.default_value
    elif value.header is not None:
        out.request_header.name = value.header.name
        out.request_header.default_value = value.header.default_value
    return out


def _canonical_service(proxy: Proxy) -> str:
    """The tracer's service name: the proxy's canonical service (``model.canonical``) and its
    namespace."""
    name = canonical_name(proxy.label_map, proxy.workload_name or proxy.pod_name)
    return f"{name}.{proxy.namespace}"


def _tracer(
    ctx: PushContext, proxy: Proxy, provider: ExtensionProvider
) -> http_tracer_pb2.Tracing.Http:
    c = _collector(ctx, provider)
    if provider.zipkin is not None:
        z = zipkin_pb2.ZipkinConfig(
            collector_cluster=c.cluster,
            collector_endpoint=provider.zipkin.path or "/api/v2/spans",
            collector_endpoint_version=zipkin_pb2.ZipkinConfig.HTTP_JSON,
            collector_hostname=c.host,
        )
        z.trace_id_128bit = not provider.zipkin.enable_64bit_trace_id
        z.shared_span_context.value = False
        return http_tracer_pb2.Tracing.Http(name=ZIPKIN, typed_config=any_of(z))
    otel = provider.opentelemetry
    assert otel is not None
    o = opentelemetry_pb2.OpenTelemetryConfig(service_name=_canonical_service(proxy))
    if otel.http is not None:
        uri = http_uri_pb2.HttpUri(
            uri=f"http://{c.host}:{c.port}{otel.http.path or '/v1/traces'}", cluster=c.cluster
        )
        uri.timeout.CopyFrom(
            duration(otel.http.timeout.total_seconds() if otel.http.timeout else 5.0)
        )
        o.http_service.CopyFrom(http_service_pb2.HttpService(http_uri=uri))
    else:
        o.grpc_service.CopyFrom(
            grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
                    cluster_name=c.cluster, authority=c.host
                )
            )
        )
    return http_tracer_pb2.Tracing.Http(name=OPENTELEMETRY, typed_config=any_of(o))


def tracing(
    ctx: PushContext, proxy: Proxy, plan: TracingPlan
) -> hcm_pb2.HttpConnectionManager.Tracing:
    t = flt.HCM_TYPE.Tracing()
    t.client_sampling.value = 100.0
    t.random_sampling.value = plan.sampling
    t.overall_sampling.value = 100.0
    t.custom_tags.extend(_custom_tag(name, value) for name, value in plan.custom_tags)
    if plan.provider is not None:
        t.provider.CopyFrom(_tracer(ctx, proxy, plan.provider))
        spec = plan.provider.zipkin or plan.provider.opentelemetry
        tag_length = spec.max_tag_length if spec is not None else 0
        length = tag_length or ctx.mesh.telemetry.max_path_tag_length
        if length:
            t.max_path_tag_length.value = length
    return t


# --- per proxy -----------------------------------------------------------------------------


def _direction(ctx: PushContext, proxy: Proxy, plan: DirectionPlan) -> DirectionConfig:
    defaults = ctx.mesh.telemetry
    logs = tuple(access_log(p, defaults) for p in plan.access_logs)
    trace = tracing(ctx, proxy, plan.tracing) if plan.tracing is not None else None
    return DirectionConfig(logs, trace, tuple(_no_route_only(log) for log in logs))


def _no_route_only(log: accesslog_pb2.AccessLog) -> accesslog_pb2.AccessLog:
    """Istio's listener access log: the same log, only for NR (no matching filter chain)."""
    out = accesslog_pb2.AccessLog()
    out.CopyFrom(log)
    nr = accesslog_pb2.AccessLogFilter()
    nr.response_flag_filter.flags.append("NR")
    if log.HasField("filter"):
        out.filter.ClearField("extension_filter")
        out.filter.and_filter.filters.extend([nr, log.filter])
    else:
        out.filter.CopyFrom(nr)
    return out


def proxy_telemetry(ctx: PushContext, proxy: Proxy) -> ProxyTelemetry | None:
    """What to add to this proxy's listeners and clusters; None when nothing is configured."""
    telemetries = ctx.policies.telemetries
    root = ctx.mesh.root_namespace
    labels = proxy.labels if telemetries.selects_by_labels(root, proxy.namespace) else None
    # OpenTelemetry's service_name names the workload, so its output is per workload.
    key = (proxy.namespace, labels, _canonical_service(proxy))
    if key in ctx.memo.telemetry:
        return ctx.memo.telemetry[key]
    levels = telemetries.applicable(root, proxy.namespace, proxy.label_map).first_per_level()
    plan = telemetry_plan([t for t in levels if t is not None], ctx.mesh.telemetry)
    result = None
    if not plan.empty:
        providers = {
            d.tracing.provider
            for d in (plan.outbound, plan.inbound)
            if d.tracing is not None and d.tracing.provider is not None
        }
        collectors = tuple(sorted({_collector(ctx, p) for p in providers}, key=lambda c: c.cluster))
        result = ProxyTelemetry(
            _direction(ctx, proxy, plan.outbound), _direction(ctx, proxy, plan.inbound), collectors
        )
    ctx.memo.telemetry[key] = result
    return result


def _decorate_filter(f: listener_components_pb2.Filter, config: DirectionConfig) -> None:
    if f.name == flt.HCM:
        hcm = flt.HCM_TYPE()
        f.typed_config.Unpack(hcm)
        hcm.access_log.extend(config.access_logs)
        if config.tracing is not None:
            hcm.tracing.CopyFrom(config.tracing)
        f.typed_config.CopyFrom(any_of(hcm))
    elif f.name == flt.TCP_PROXY and config.access_logs:
        tp = tcp_proxy_pb2.TcpProxy()
        f.typed_config.Unpack(tp)
        logs = config.access_logs
        if tp.access_log_options.flush_access_log_on_connected:  # for Istio's metrics only
            logs = tuple(_connection_end_only(log) for log in logs)
        tp.access_log.extend(logs)
        f.typed_config.CopyFrom(any_of(tp))


def _connection_end_only(log: accesslog_pb2.AccessLog) -> accesslog_pb2.AccessLog:
    """The same log, not when the upstream connects: one line per connection, as without the
    flush that the TCP opened-connections counter asks of tcp_proxy."""
    out = accesslog_pb2.AccessLog()
    out.CopyFrom(log)
    not_connected = accesslog_pb2.AccessLogFilter()
    not_connected.log_type_filter.types.append(TCP_UPSTREAM_CONNECTED)
    not_connected.log_type_filter.exclude = True
    if log.HasField("filter"):
        out.ClearField("filter")
        out.filter.and_filter.filters.extend([not_connected, log.filter])
    else:
        out.filter.CopyFrom(not_connected)
    return out


def decorate_listeners(listeners: dict[str, Message], telemetry: ProxyTelemetry | None) -> None:
    """Replace each listener by a copy whose HCMs and tcp_proxies carry access logs and
    tracing (copies: listeners may be shared by other proxies' results)."""
    if telemetry is None:
        return
    for name, lst in list(listeners.items()):
        config = telemetry.for_listener(lst)
        if not config.access_logs and config.tracing is None:
            continue
        copy = listener_pb2.Listener()
        copy.CopyFrom(lst)
        chains = list(copy.filter_chains)
        if copy.HasField("default_filter_chain"):
            chains.append(copy.default_filter_chain)
        for chain in chains:
            for f in chain.filters:
                _decorate_filter(f, config)
        copy.access_log.extend(config.listener_logs)
        listeners[name] = copy


def collector_clusters(
    ctx: PushContext, telemetry: ProxyTelemetry | None, existing: Mapping[str, cluster_pb2.Cluster]
) -> list[Message]:
    """Clusters the tracers need that the proxy does not have yet: a registry service outside
    the proxy's Sidecar scope, or a plain host:port collector (DNS, or static for an IP)."""
    if telemetry is None:
        return []
    out = []
    for c in telemetry.collectors:
        if c.cluster in existing:
            continue
        out.append(provider_cluster(ctx, c))
    return out


__all__ = [
    "CLIENT",
    "ISTIO_JSON_FORMAT",
    "ISTIO_TEXT_FORMAT",
    "SERVER",
    "ProxyTelemetry",
    "collector_clusters",
    "decorate_listeners",
    "proxy_telemetry",
]
