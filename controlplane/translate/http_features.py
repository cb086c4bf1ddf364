"""Per-route HTTP features: retries, mirrors, header operations (fault and CORS are filter
modules: ``translate/filters/``)."""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf.message import Message

from controlplane.model.common import Percent
from controlplane.model.mesh import MeshConfig
from controlplane.model.virtual_service import (
    Destination,
    HeaderOperations,
    HTTPRetry,
    HTTPRoute,
)
from controlplane.translate.pb import any_of, duration


def fractional(percent: float) -> percent_pb2.FractionalPercent:
    """A 0..100 percentage as Istio sends it: parts per million."""
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def percent_value(pct: Percent | None, legacy: int | None) -> float:
    """A ``Percent`` (or a deprecated integer percent) as 0..100; unset: 100."""
    if pct is not None:
        return float(pct.value)
    if legacy is not None:
        return float(legacy)
    return 100.0


def retry_policy(retries: HTTPRetry | None, mesh: MeshConfig) -> rc.RetryPolicy | None:
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


def mirror_policies(
    route: HTTPRoute, cluster_for: Callable[[Destination], str]
) -> list[rc.RouteAction.RequestMirrorPolicy]:
    """``mirror`` (+ mirrorPercentage) and ``mirrors``; ``cluster_for(dest)`` names the cluster."""
    out = []
    if route.mirror is not None:
        pct = percent_value(route.mirror_percentage, route.mirror_percent)
        out.append((route.mirror, pct))
    for m in route.mirrors:
        if m.destination is not None:
            out.append((m.destination, percent_value(m.percentage, None)))
    policies = []
    for dest, pct in out:
        p = rc.RouteAction.RequestMirrorPolicy(cluster=cluster_for(dest))
        p.runtime_fraction.default_value.CopyFrom(fractional(pct))
        policies.append(p)
    return policies


def header_options(ops: HeaderOperations | None) -> tuple[list[base_pb2.HeaderValueOption], list[str]]:
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


def typed_extension(name: str, message: Message) -> extension_pb2.TypedExtensionConfig:
    return extension_pb2.TypedExtensionConfig(name=name, typed_config=any_of(message))
