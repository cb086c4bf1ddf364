"""HTTP route validation for VirtualService (after Istio's validateHTTPRoute and helpers)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from http import HTTPStatus

from controlplane.model.base import FieldError
from controlplane.model.checks import (
    check_dns1123_label,
    check_fqdn,
    check_http_header_name,
    check_http_header_value,
    check_port,
    check_regex,
    check_wildcard_domain,
)
from controlplane.model.validate_common import (
    error,
    validate_duration,
    validate_labels,
    validate_percent,
    validate_string_match,
    warning,
)
from controlplane.model.virtual_service import (
    CorsPolicy,
    Destination,
    Headers,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRetry,
    HTTPRoute,
    HTTPRouteDestination,
    RouteDestination,
)

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}
)
RETRY_ON = frozenset({
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
    "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal",
    "resource-exhausted", "unavailable",
})  # fmt: skip
GRPC_STATUS = frozenset({
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
})  # fmt: skip
_HTTP_STATUS_CODES = frozenset(int(s) for s in HTTPStatus)
JWT_CLAIM_HEADER_PREFIX = "@request.auth.claims"
MAX_DIRECT_RESPONSE_BODY = 1024 * 1024


def validate_gateway_name(name: str, path: str, errors: list[FieldError]) -> None:
    namespace, slash, gateway = name.partition("/")
    if not slash:
        if "." in name:
            parts = name.split(".")
            warning(
                errors,
                path,
                f"using legacy gatewayName format {name!r}; prefer the "
                f"<namespace>/<name> format: {parts[1]}/{parts[0]}",
            )
        if message := check_fqdn(name):
            error(errors, path, message)
        return
    if not namespace or not gateway:
        error(errors, path, "config namespace and gateway name cannot be empty")
        return
    if check_dns1123_label(namespace):
        error(errors, path, f"invalid value for namespace: {namespace!r}")
    if check_dns1123_label(gateway):
        error(errors, path, f"invalid value for gateway name: {gateway!r}")


def validate_http_route(
    route: HTTPRoute, path: str, delegate: bool, applies_to_gateway: bool, errors: list[FieldError]
) -> None:
    if route.delegate is not None:  # a root route: only delegate
        if delegate:
            error(errors, f"{path}.delegate", "delegate HTTP route cannot contain delegate")
        if route.redirect is not None:
            error(
                errors,
                f"{path}.redirect",
                f"root HTTP route {route.name} must not specify redirect",
            )
        if route.route:
            error(errors, f"{path}.route", f"root HTTP route {route.name} must not specify route")
        if not route.delegate.name:
            error(errors, f"{path}.delegate.name", "Required value")
    elif route.redirect is not None:
        if route.route:
            error(errors, f"{path}.redirect", "HTTP route cannot contain both route and redirect")
        if route.fault is not None:
            error(errors, f"{path}.fault", "HTTP route cannot contain both fault and redirect")
        if route.rewrite is not None:
            error(
                errors,
                f"{path}.rewrite",
                "HTTP route rule cannot contain both rewrite and redirect",
            )
        if route.direct_response is not None:
            error(
                errors,
                f"{path}.directResponse",
                "HTTP route cannot contain both redirect and direct response",
            )
    elif route.direct_response is not None:
        if route.route:
            error(
                errors,
                f"{path}.directResponse",
                "HTTP route cannot contain both route and direct response",
            )
    elif not route.route:
        error(errors, path, "HTTP route, redirect, direct response or delegate is required")
    if route.mirror is not None and route.mirrors:
        error(errors, f"{path}.mirrors", "cannot specify both mirror and mirrors")

    for index, match in enumerate(route.match):
        _validate_http_match(
            match,
            f"{path}.match[{index}]",
            delegate or route.delegate is not None,
            applies_to_gateway,
            errors,
        )
    _validate_headers(
        route.headers,
        f"{path}.headers",
        errors,
        authority=route.rewrite.authority if route.rewrite else "",
    )
    if route.cors_policy is not None:
        _validate_cors(route.cors_policy, f"{path}.corsPolicy", errors)
    if route.fault is not None:
        _validate_fault(route.fault, f"{path}.fault", errors)
    if route.mirror_percent is not None:
        if route.mirror_percent > 100 or route.mirror_percent < 0:
            error(
                errors,
                f"{path}.mirrorPercent",
                f"mirror_percent must be in range 0..100 (it has {route.mirror_percent})",
            )
        warning(
            errors,
            f"{path}.mirrorPercent",
            'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead',
        )
    validate_percent(route.mirror_percentage, f"{path}.mirrorPercentage", errors)
    if route.mirror is not None:
        validate_destination(route.mirror, f"{path}.mirror", errors)
    for index, mirror in enumerate(route.mirrors):
        m_path = f"{path}.mirrors[{index}]"
        if mirror.destination is None:
            error(errors, f"{m_path}.destination", "destination is required for mirrors")
            continue
        validate_destination(mirror.destination, f"{m_path}.destination", errors)
        validate_percent(mirror.percentage, f"{m_path}.percentage", errors)
    if route.redirect is not None:
        redirect, r_path = route.redirect, f"{path}.redirect"
        if not (
            redirect.uri
            or redirect.authority
            or redirect.scheme
            or redirect.port
            or redirect.derive_port
        ):
            error(errors, r_path, "redirect must specify URI, authority, scheme, or port")
        if redirect.port and redirect.derive_port:
            error(errors, f"{r_path}.port", "only one of port and derivePort may be set")
        if redirect.redirect_code and not 300 <= redirect.redirect_code <= 399:
            error(
                errors,
                f"{r_path}.redirectCode",
                f"{redirect.redirect_code} is not a valid redirect code, must be 3xx",
            )
        if redirect.scheme and redirect.scheme not in ("http", "https"):
            error(errors, f"{r_path}.scheme", 'invalid redirect scheme, must be "http" or "https"')
        if redirect.port and (message := check_port(redirect.port)):
            error(errors, f"{r_path}.port", message)
    if route.direct_response is not None:
        _validate_direct_response(route, f"{path}.directResponse", errors)
    if route.retries is not None:
        _validate_retries(route.retries, f"{path}.retries", errors)
    if route.rewrite is not None:
        rewrite, w_path = route.rewrite, f"{path}.rewrite"
        if rewrite.uri and rewrite.uri_regex_rewrite is not None:
            error(errors, w_path, "rewrite may only contain one of URI or UriRegexRewrite")
        if not (rewrite.uri or rewrite.authority or rewrite.uri_regex_rewrite):
            error(
                errors,
                w_path,
                "rewrite must specify at least one of URI, UriRegexRewrite, or authority",
            )
        regex_rewrite = rewrite.uri_regex_rewrite
        if regex_rewrite is not None:
            if not regex_rewrite.match or not regex_rewrite.rewrite:
                error(
                    errors,
                    f"{w_path}.uriRegexRewrite",
                    "UriRegexRewrite requires both Rewrite and Match fields to be specified",
                )
            elif message := check_regex(regex_rewrite.match):
                error(errors, f"{w_path}.uriRegexRewrite.match", message)
    _validate_http_route_destinations(route.route, f"{path}.route", errors)
    validate_duration(route.timeout, f"{path}.timeout", errors)


def _validate_http_match(
    match: HTTPMatchRequest,
    path: str,
    delegating: bool,
    applies_to_gateway: bool,
    errors: list[FieldError],
) -> None:
    for name, value in (
        ("uri", match.uri),
        ("scheme", match.scheme),
        ("method", match.method),
        ("authority", match.authority),
    ):
        if value is None:
            continue
        validate_string_match(value, f"{path}.{name}", errors)
        if delegating and value.regex is not None:
            error(
                errors,
                f"{path}.{name}.regex",
                f"{name} match does not support regex match for delegating",
            )
    for field, table in (("headers", match.headers), ("withoutHeaders", match.without_headers)):
        for name, value in table.items():
            h_path = f"{path}.{field}[{name}]"
            if name.startswith(JWT_CLAIM_HEADER_PREFIX):
                if not applies_to_gateway:
                    error(
                        errors,
                        h_path,
                        f"JWT claim based routing (key: {name}) is only supported for gateway",
                    )
            elif message := check_http_header_name(name):
                error(errors, h_path, message)
            validate_string_match(value, h_path, errors)
            if delegating and value.regex is not None:
                error(
                    errors,
                    f"{h_path}.regex",
                    f"{field} match {name} does not support regex match for delegating",
                )
    for name, value in match.query_params.items():
        q_path = f"{path}.queryParams[{name}]"
        validate_string_match(value, q_path, errors)
        if delegating and value.regex is not None:
            error(
                errors,
                f"{q_path}.regex",
                f"query param match {name} does not support regex match for delegating",
            )
    if match.port and (message := check_port(match.port)):
        error(errors, f"{path}.port", message)
    validate_labels(match.source_labels, f"{path}.sourceLabels", errors)
    for index, gateway in enumerate(match.gateways):
        validate_gateway_name(gateway, f"{path}.gateways[{index}]", errors)
    if match.source_namespace and check_dns1123_label(match.source_namespace):
        error(
            errors,
            f"{path}.sourceNamespace",
            f"sourceNamespace match {match.source_namespace} is invalid",
        )


def validate_destination(destination: Destination, path: str, errors: list[FieldError]) -> None:
    if destination.host == "*":
        error(errors, f"{path}.host", "invalid destination host *")
    elif message := check_wildcard_domain(destination.host):
        error(errors, f"{path}.host", message)
    if destination.subset and check_dns1123_label(destination.subset):
        error(errors, f"{path}.subset", f"subset name is invalid: {destination.subset}")
    if destination.port is not None and (message := check_port(destination.port.number)):
        error(errors, f"{path}.port.number", message)


def validate_weights(weights: list[int], path: str, errors: list[FieldError]) -> None:
    total = 0
    for index, weight in enumerate(weights):
        if weight < 0:
            error(errors, f"{path}[{index}].weight", f"weight {weight} < 0")
        total += weight
    if len(weights) > 1 and total == 0:
        error(errors, path, "total destination weight = 0")
    elif len(weights) > 1 and total != 100:
        warning(
            errors,
            path,
            f"total destination weight {total} != 100: weights are used as relative shares",
        )


def validate_route_destinations(
    routes: Sequence[HTTPRouteDestination | RouteDestination], path: str, errors: list[FieldError]
) -> None:
    """Weighted destinations of an HTTP, TCP or TLS route."""
    for index, route in enumerate(routes):
        d_path = f"{path}[{index}]"
        if route.destination is None:
            error(errors, f"{d_path}.destination", "destination is required")
        else:
            validate_destination(route.destination, f"{d_path}.destination", errors)
    validate_weights([r.weight for r in routes], path, errors)


def _validate_http_route_destinations(
    routes: tuple[HTTPRouteDestination, ...], path: str, errors: list[FieldError]
) -> None:
    validate_route_destinations(routes, path, errors)
    for index, route in enumerate(routes):
        _validate_headers(route.headers, f"{path}[{index}].headers", errors)


def _is_authority(name: str) -> bool:
    return name.lower() in (":authority", "host")


def _validate_headers(
    headers: Headers | None, path: str, errors: list[FieldError], *, authority: str = ""
) -> None:
    """Header names that Envoy lets a route change, as Istio's ValidateHTTPHeader*OperationName."""
    if headers is None:
        return
    authority_set = bool(authority)
    for side, ops in (("request", headers.request), ("response", headers.response)):
        if ops is None:
            continue
        for field, table in (("set", ops.set), ("add", ops.add)):
            for name, value in table.items():
                h_path = f"{path}.{side}.{field}[{name}]"
                if not name:
                    error(errors, h_path, "header name cannot be empty")
                elif side == "request" and _is_authority(name):
                    if authority_set:
                        error(errors, h_path, "authority header cannot be set multiple times")
                    authority_set = True
                elif name.startswith(":") or name.lower() == "host":
                    error(
                        errors,
                        h_path,
                        f'invalid header {name!r}: header cannot have ":" prefix or be Host',
                    )
                if message := check_http_header_value(value):
                    error(errors, h_path, message)
        for index, name in enumerate(ops.remove):
            h_path = f"{path}.{side}.remove[{index}]"
            if not name:
                error(errors, h_path, "header name cannot be empty")
            elif name.startswith(":") or name.lower() == "host":
                error(
                    errors,
                    h_path,
                    f'invalid header {name!r}: header cannot have ":" prefix or be Host',
                )


def _validate_retries(retries: HTTPRetry, path: str, errors: list[FieldError]) -> None:
    if retries.attempts < 0:
        error(errors, f"{path}.attempts", "attempts cannot be negative")
    if retries.attempts == 0 and (
        retries.per_try_timeout is not None
        or retries.retry_on
        or retries.retry_remote_localities is not None
    ):
        error(
            errors,
            f"{path}.attempts",
            "http retry policy configured when attempts are set to 0 (disabled)",
        )
    validate_duration(retries.per_try_timeout, f"{path}.perTryTimeout", errors)
    validate_duration(retries.backoff, f"{path}.backoff", errors)
    if retries.retry_on:
        for policy in retries.retry_on.split(","):
            if policy in RETRY_ON or (policy.isdigit() and int(policy) in _HTTP_STATUS_CODES):
                continue
            error(errors, f"{path}.retryOn", f"{policy!r} is not a valid retryOn policy")


def _validate_fault(fault: HTTPFaultInjection, path: str, errors: list[FieldError]) -> None:
    if fault.delay is None and fault.abort is None:
        error(errors, path, "HTTP fault injection must have an abort and/or a delay")
    if fault.abort is not None:
        abort, a_path = fault.abort, f"{path}.abort"
        validate_percent(abort.percentage, f"{a_path}.percentage", errors, fractional=True)
        kinds = [
            k for k in (abort.http_status, abort.grpc_status, abort.http2_error) if k is not None
        ]
        if len(kinds) > 1:
            error(errors, a_path, "only one of httpStatus, grpcStatus or http2Error may be set")
        elif not kinds:
            warning(errors, a_path, "abort configured, but error type not set")
        if abort.http_status is not None and not 200 <= abort.http_status <= 600:
            error(
                errors,
                f"{a_path}.httpStatus",
                f"HTTP status {abort.http_status} is not in range 200-599",
            )
        if abort.grpc_status is not None and abort.grpc_status not in GRPC_STATUS:
            error(
                errors,
                f"{a_path}.grpcStatus",
                f"gRPC status {abort.grpc_status!r} is not supported, "
                "use a name such as NOT_FOUND or UNAVAILABLE",
            )
        if abort.http2_error is not None:
            error(errors, f"{a_path}.http2Error", "HTTP/2 abort fault injection not supported yet")
    if fault.delay is not None:
        delay, d_path = fault.delay, f"{path}.delay"
        validate_percent(delay.percentage, f"{d_path}.percentage", errors, fractional=True)
        if delay.percent is not None and not 0 <= delay.percent <= 100:
            error(errors, f"{d_path}.percent", f"percentage {delay.percent} is not in range 0..100")
        if delay.fixed_delay is not None and delay.exponential_delay is not None:
            error(errors, d_path, "only one of fixedDelay or exponentialDelay may be set")
        elif delay.fixed_delay is None and delay.exponential_delay is None:
            warning(errors, d_path, "delay configured, but no fixedDelay set")
        validate_duration(delay.fixed_delay, f"{d_path}.fixedDelay", errors)
        if delay.exponential_delay is not None:
            error(errors, f"{d_path}.exponentialDelay", "exponentialDelay not supported yet")


def _validate_direct_response(route: HTTPRoute, path: str, errors: list[FieldError]) -> None:
    direct = route.direct_response
    assert direct is not None
    if not 200 <= direct.status <= 600:
        error(errors, f"{path}.status", f"HTTP status {direct.status} is not in range 200-599")
    body = direct.body
    if body is None:
        return
    size = 0
    if body.string is not None and body.bytes is not None:
        error(errors, f"{path}.body", "only one of string and bytes may be set")
    if body.string is not None:
        size = len(body.string.encode())
    if body.bytes is not None:
        try:
            size = len(base64.b64decode(body.bytes, validate=True))
        except (binascii.Error, ValueError):
            error(errors, f"{path}.body.bytes", "must be base64-encoded")
    if size > MAX_DIRECT_RESPONSE_BODY:
        error(
            errors,
            f"{path}.body",
            "large direct_responses may impact control plane performance, must be less than 1MB",
        )
    elif size > 100 * 1024:
        warning(
            errors, f"{path}.body", "large direct_responses may impact control plane performance"
        )


def _validate_cors(policy: CorsPolicy, path: str, errors: list[FieldError]) -> None:
    for index, origin in enumerate(policy.allow_origins):
        o_path = f"{path}.allowOrigins[{index}]"
        if not (origin.exact or origin.prefix or origin.regex):
            error(errors, o_path, "'' is not a valid match type for CORS allow origins")
        validate_string_match(origin, o_path, errors)
    for index, method in enumerate(policy.allow_methods):
        if method not in HTTP_METHODS:
            error(
                errors,
                f"{path}.allowMethods[{index}]",
                f"{method!r} is not a supported HTTP method",
            )
    for field, names in (
        ("allowHeaders", policy.allow_headers),
        ("exposeHeaders", policy.expose_headers),
    ):
        for index, name in enumerate(names):
            if name != "*" and (message := check_http_header_name(name)):
                error(errors, f"{path}.{field}[{index}]", message)
    if policy.max_age is not None:
        validate_duration(policy.max_age, f"{path}.maxAge", errors)
        if policy.max_age.microseconds:
            error(
                errors, f"{path}.maxAge", "max_age duration is accurate only to seconds precision"
            )
