"""Per-route HTTP features: retries, fault injection, CORS, mirrors, header operations."""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.v3 import percent_pb2

from controlplane.translate.http_route_match import string_matcher
from controlplane.model.mesh import MeshConfig
from controlplane.translate.pb import any_of, duration

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
ROUTER_FILTER = "envoy.filters.http.router"


def fractional(percent: float) -> percent_pb2.FractionalPercent:
    """A 0..100 percentage as Istio sends it: parts per million."""
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def _percent(pct: Any, legacy: int | None) -> float:
    if pct is not None:
        return float(pct.value)
    if legacy is not None:
        return float(legacy)
    return 100.0


def retry_policy(retries: Any, mesh: MeshConfig) -> rc.RetryPolicy | None:
    """The VS retry policy, Istio's default when none is set, None when attempts is 0."""
    defaults = mesh.default_retry
    if retries is None:
        if defaults is None:
            return None
        attempts, retry_on, per_try, ignore_prev = defaults.attempts, defaults.retry_on, None, False
    else:
        if not retries.attempts:
            return None
        attempts = retries.attempts
        retry_on = retries.retry_on or (defaults.retry_on if defaults else "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes")
        per_try = retries.per_try_timeout
        ignore_prev = retries.retry_ignore_previous_hosts is False
    policy = rc.RetryPolicy()
    policy.num_retries.value = attempts
    words, codes = [], []
    for word in (w.strip() for w in retry_on.split(",")):
        if word.isdigit():
            codes.append(int(word))
        elif word:
            words.append(word)
    if codes and "retriable-status-codes" not in words:
        words.append("retriable-status-codes")
    policy.retry_on = ",".join(words)
    policy.retriable_status_codes.extend(codes)
    if per_try is not None:
        policy.per_try_timeout.CopyFrom(duration(per_try))
    if not ignore_prev:
        policy.retry_host_predicate.append(
            rc.RetryPolicy.RetryHostPredicate(
                name="envoy.retry_host_predicates.previous_hosts",
                typed_config=any_of(previous_hosts_pb2.PreviousHostsPredicate()),
            )
        )
        policy.host_selection_retry_max_attempts = defaults.host_selection_retry_max_attempts if defaults else 5
    if retries is not None and retries.backoff is not None:
        policy.retry_back_off.base_interval.CopyFrom(duration(retries.backoff))
    return policy


_GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}


def fault_config(fault: Any) -> fault_pb2.HTTPFault | None:
    if fault is None or (fault.delay is None and fault.abort is None):
        return None
    out = fault_pb2.HTTPFault()
    d = fault.delay
    if d is not None and d.fixed_delay is not None:
        out.delay.fixed_delay.CopyFrom(duration(d.fixed_delay))
        out.delay.percentage.CopyFrom(fractional(_percent(d.percentage, d.percent)))
    elif d is not None and d.exponential_delay is not None:  # Envoy has no exponential delay
        out.delay.fixed_delay.CopyFrom(duration(d.exponential_delay))
        out.delay.percentage.CopyFrom(fractional(_percent(d.percentage, d.percent)))
    a = fault.abort
    if a is not None:
        if a.http_status is not None:
            out.abort.http_status = a.http_status
        elif a.grpc_status is not None:
            out.abort.grpc_status = _GRPC_CODES.get(a.grpc_status.upper(), 2)
        else:
            out.abort.http_status = 503
        out.abort.percentage.CopyFrom(fractional(_percent(a.percentage, None)))
    return out


def empty_fault_filter_config() -> fault_pb2.HTTPFault:
    return fault_pb2.HTTPFault()


def cors_policy(cors: Any) -> cors_pb2.CorsPolicy | None:
    if cors is None:
        return None
    out = cors_pb2.CorsPolicy()
    for m in cors.allow_origins:
        sm = string_matcher(m)
        if sm is not None:
            out.allow_origin_string_match.append(sm)
    for origin in cors.allow_origin:
        out.allow_origin_string_match.add(exact=origin)
    if cors.allow_methods:
        out.allow_methods = ",".join(cors.allow_methods)
    if cors.allow_headers:
        out.allow_headers = ",".join(cors.allow_headers)
    if cors.expose_headers:
        out.expose_headers = ",".join(cors.expose_headers)
    if cors.max_age is not None:
        out.max_age = str(int(cors.max_age.total_seconds()))
    if cors.allow_credentials is not None:
        out.allow_credentials.value = cors.allow_credentials
    if cors.unmatched_preflights == "IGNORE":
        out.forward_not_matching_preflights.value = False
    return out


def mirror_policies(route: Any, cluster_for: Any) -> list[rc.RouteAction.RequestMirrorPolicy]:
    """``mirror`` (+ mirrorPercentage) and ``mirrors``; ``cluster_for(dest)`` names the cluster."""
    out = []
    if route.mirror is not None:
        pct = _percent(route.mirror_percentage, route.mirror_percent)
        out.append((route.mirror, pct))
    for m in route.mirrors:
        if m.destination is not None:
            out.append((m.destination, _percent(m.percentage, None)))
    policies = []
    for dest, pct in out:
        p = rc.RouteAction.RequestMirrorPolicy(cluster=cluster_for(dest))
        p.runtime_fraction.default_value.CopyFrom(fractional(pct))
        policies.append(p)
    return policies


def header_options(ops: Any) -> tuple[list[base_pb2.HeaderValueOption], list[str]]:
    """Istio HeaderOperations -> (headers to add, headers to remove)."""
    if ops is None:
        return [], []
    add = []
    for name in sorted(ops.set):
        add.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=ops.set[name]),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        )
    for name in sorted(ops.add):
        add.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=ops.add[name]),
                append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
            )
        )
    return add, list(ops.remove)


def typed_extension(name: str, message: Any) -> extension_pb2.TypedExtensionConfig:
    return extension_pb2.TypedExtensionConfig(name=name, typed_config=any_of(message))
