"""Validation of the Gateway API kinds: what their CRD schemas enforce at the API server
(required fields, ranges, list sizes, hostname syntax), with field paths.

Values the conversion reports in status instead (an unknown protocol, filter or backend kind,
a missing Service) are not errors here: Istio accepts such objects and says why in status.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import check_port, check_wildcard_domain, is_ip
from controlplane.model.gateway_api import (
    BackendTLSPolicy,
    GatewayClass,
    GRPCRoute,
    GRPCRouteMatch,
    GRPCRouteRule,
    GRPCRouteSpec,
    HTTPBackendRef,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    HTTPRouteSpec,
    KubernetesGateway,
    Listener,
    ListenerEntry,
    ListenerSet,
    ParentReference,
    PolicyTargetReference,
    ReferenceGrant,
    TCPRoute,
    TLSRoute,
    XBackendTrafficPolicy,
)
from controlplane.model.validate_common import error

# The CRDs' maxItems: they bound what one object may hold.
MAX_LISTENERS = 64
MAX_PARENT_REFS = 32
MAX_HOSTNAMES = 16
MAX_RULES = 16
MAX_MATCHES = 64
MAX_FILTERS = 16
MAX_BACKEND_REFS = 16
MAX_HEADER_MATCHES = 16
MAX_CERTIFICATE_REFS = 64
MAX_ADDRESSES = 16
MAX_GRANT_ENTRIES = 16
MAX_WEIGHT = 1_000_000


def _too_many(items: Sequence[object], limit: int, path: str, errors: list[FieldError]) -> bool:
    if len(items) > limit:
        error(errors, path, f"Too many: {len(items)}: must have at most {limit} items")
        return True
    return False


def _check_hostname(value: str, path: str, errors: list[FieldError]) -> None:
    if is_ip(value):
        error(errors, path, f"hostname {value!r} must not be an IP address")
    elif message := check_wildcard_domain(value):
        error(errors, path, message)


def _check_port(port: int | None, path: str, errors: list[FieldError]) -> None:
    if port is not None and (message := check_port(port)):
        error(errors, path, message)


def validate_gateway_class(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, GatewayClass)
    if not resource.spec.controller_name:
        error(errors, "spec.controllerName", "Required value")


def validate_kubernetes_gateway(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, KubernetesGateway)
    spec = resource.spec
    if not spec.gateway_class_name:
        error(errors, "spec.gatewayClassName", "Required value")
    _too_many(spec.addresses, MAX_ADDRESSES, "spec.addresses", errors)
    for index, address in enumerate(spec.addresses):
        if not address.value:
            error(errors, f"spec.addresses[{index}].value", "Required value")
    _validate_listeners(spec.listeners, errors)


def validate_listener_set(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, ListenerSet)
    if not resource.spec.parent_ref.name:
        error(errors, "spec.parentRef.name", "Required value")
    _validate_listeners(resource.spec.listeners, errors)


def _validate_listeners(listeners: Sequence[Listener | ListenerEntry], errors: list[FieldError]) -> None:
    if _too_many(listeners, MAX_LISTENERS, "spec.listeners", errors):
        return
    names: set[str] = set()
    for index, listener in enumerate(listeners):
        path = f"spec.listeners[{index}]"
        if not listener.name:
            error(errors, f"{path}.name", "Required value")
        elif listener.name in names:
            error(errors, f"{path}.name", f"Duplicate value: {listener.name!r} (listener names must be unique)")
        names.add(listener.name)
        _check_port(listener.port or None, f"{path}.port", errors)
        if not listener.protocol:
            error(errors, f"{path}.protocol", "Required value")
        if listener.hostname is not None:
            _check_hostname(listener.hostname, f"{path}.hostname", errors)
        if listener.tls is not None:
            _too_many(listener.tls.certificate_refs, MAX_CERTIFICATE_REFS, f"{path}.tls.certificateRefs", errors)
        routes = listener.allowed_routes
        if routes is not None and routes.namespaces is not None:
            ns_path = f"{path}.allowedRoutes.namespaces"
            if routes.namespaces.from_ not in ("All", "Same", "Selector", "None"):
                error(errors, f"{ns_path}.from", f'Unsupported value: "{routes.namespaces.from_}": '
                      'supported values: "All", "Same", "Selector", "None"')
            elif routes.namespaces.from_ == "Selector" and routes.namespaces.selector is None:
                error(errors, f"{ns_path}.selector", "Required value when from is Selector")


def _validate_parents_and_hostnames(
    parent_refs: tuple[ParentReference, ...], hostnames: tuple[str, ...], errors: list[FieldError]
) -> None:
    _too_many(parent_refs, MAX_PARENT_REFS, "spec.parentRefs", errors)
    for index, parent in enumerate(parent_refs):
        if not parent.name:
            error(errors, f"spec.parentRefs[{index}].name", "Required value")
        _check_port(parent.port, f"spec.parentRefs[{index}].port", errors)
    if not _too_many(hostnames, MAX_HOSTNAMES, "spec.hostnames", errors):
        for index, hostname in enumerate(hostnames):
            _check_hostname(hostname, f"spec.hostnames[{index}]", errors)


def _validate_backends(
    backends: tuple[HTTPBackendRef, ...] | tuple[object, ...], path: str, errors: list[FieldError]
) -> None:
    if _too_many(backends, MAX_BACKEND_REFS, path, errors):
        return
    for index, backend in enumerate(backends):
        weight = getattr(backend, "weight", None)
        if weight is not None and not 0 <= weight <= MAX_WEIGHT:
            error(errors, f"{path}[{index}].weight", f"weight {weight} must be between 0 and {MAX_WEIGHT}")
        _check_port(getattr(backend, "port", None), f"{path}[{index}].port", errors)
        if isinstance(backend, HTTPBackendRef):
            _validate_filters(backend.filters, f"{path}[{index}].filters", errors)


_FILTER_FIELDS = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "RequestRedirect": "request_redirect",
    "URLRewrite": "url_rewrite",
    "CORS": "cors",
    "ExtensionRef": "extension_ref",
}


def _validate_filters(filters: tuple[HTTPRouteFilter, ...], path: str, errors: list[FieldError]) -> None:
    if _too_many(filters, MAX_FILTERS, path, errors):
        return
    for index, item in enumerate(filters):
        attr = _FILTER_FIELDS.get(item.type)
        if attr is not None and getattr(item, attr) is None:
            json_name = "urlRewrite" if attr == "url_rewrite" else item.type[0].lower() + item.type[1:]
            error(errors, f"{path}[{index}].{json_name}", f"Required value for filter type {item.type}")
        mirror = item.request_mirror
        if mirror is not None and mirror.percent is not None and not 0 <= mirror.percent <= 100:
            error(errors, f"{path}[{index}].requestMirror.percent", "must be between 0 and 100")
        if mirror is not None and mirror.fraction is not None:
            fraction = mirror.fraction
            if fraction.denominator <= 0 or not 0 <= fraction.numerator <= fraction.denominator:
                error(errors, f"{path}[{index}].requestMirror.fraction",
                      "numerator must be between 0 and a positive denominator")


def validate_http_route(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, HTTPRoute)
    _validate_http_like(resource.spec, _check_http_match, errors)


def validate_grpc_route(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, GRPCRoute)
    _validate_http_like(resource.spec, _check_grpc_match, errors)


def _check_http_match(match: HTTPRouteMatch, path: str, errors: list[FieldError]) -> None:
    _too_many(match.headers, MAX_HEADER_MATCHES, f"{path}.headers", errors)
    _too_many(match.query_params, MAX_HEADER_MATCHES, f"{path}.queryParams", errors)
    p = match.path
    if p is not None and p.type in ("Exact", "PathPrefix") and not p.value.startswith("/"):
        error(errors, f"{path}.path.value", f"value {p.value!r} must be an absolute path")


def _check_grpc_match(match: GRPCRouteMatch, path: str, errors: list[FieldError]) -> None:
    _too_many(match.headers, MAX_HEADER_MATCHES, f"{path}.headers", errors)
    method = match.method
    if method is not None and method.service is None and method.method is None:
        error(errors, f"{path}.method", "one of service or method must be set")


def _validate_http_like(
    spec: HTTPRouteSpec | GRPCRouteSpec, check_match: Callable[[Any, str, list[FieldError]], None],
    errors: list[FieldError],
) -> None:
    _validate_parents_and_hostnames(spec.parent_refs, spec.hostnames, errors)
    if _too_many(spec.rules, MAX_RULES, "spec.rules", errors):
        return
    rules: tuple[HTTPRouteRule | GRPCRouteRule, ...] = spec.rules
    for r_index, rule in enumerate(rules):
        path = f"spec.rules[{r_index}]"
        if not _too_many(rule.matches, MAX_MATCHES, f"{path}.matches", errors):
            for m_index, match in enumerate(rule.matches):
                check_match(match, f"{path}.matches[{m_index}]", errors)
        _validate_filters(rule.filters, f"{path}.filters", errors)
        _validate_backends(rule.backend_refs, f"{path}.backendRefs", errors)


def validate_tls_route(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, TLSRoute)
    _validate_l4_route(resource, resource.spec.hostnames, errors)


def validate_tcp_route(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, TCPRoute)
    _validate_l4_route(resource, (), errors)


def _validate_l4_route(route: TLSRoute | TCPRoute, hostnames: tuple[str, ...], errors: list[FieldError]) -> None:
    _validate_parents_and_hostnames(route.spec.parent_refs, hostnames, errors)
    if not _too_many(route.spec.rules, MAX_RULES, "spec.rules", errors):
        for index, rule in enumerate(route.spec.rules):
            _validate_backends(rule.backend_refs, f"spec.rules[{index}].backendRefs", errors)


def validate_reference_grant(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, ReferenceGrant)
    spec = resource.spec
    for name, items in (("from", spec.from_), ("to", spec.to)):
        if not items:
            error(errors, f"spec.{name}", "Required value: at least one entry")
        _too_many(items, MAX_GRANT_ENTRIES, f"spec.{name}", errors)
    for index, source in enumerate(spec.from_):
        if not source.namespace:
            error(errors, f"spec.from[{index}].namespace", "Required value")


MAX_POLICY_TARGETS = 16
MAX_CA_CERTIFICATE_REFS = 8
MAX_SUBJECT_ALT_NAMES = 5


def _validate_targets(targets: Sequence[PolicyTargetReference], errors: list[FieldError]) -> None:
    if not targets:
        error(errors, "spec.targetRefs", "Required value: at least one entry")
    _too_many(targets, MAX_POLICY_TARGETS, "spec.targetRefs", errors)
    for index, target in enumerate(targets):
        for name, value in (("kind", target.kind), ("name", target.name)):
            if not value:
                error(errors, f"spec.targetRefs[{index}].{name}", "Required value")


def validate_backend_tls_policy(resource: Resource, errors: list[FieldError]) -> None:
    """The CRD's rules: 1-16 targets, a precise hostname, a CA from references or the system's
    (not both), subject alt names of their type. An unknown target or CA kind is status."""
    assert isinstance(resource, BackendTLSPolicy)
    spec = resource.spec
    _validate_targets(spec.target_refs, errors)
    validation = spec.validation
    if not validation.hostname:
        error(errors, "spec.validation.hostname", "Required value")
    elif validation.hostname.startswith("*"):
        error(errors, "spec.validation.hostname", "must be a precise hostname (no wildcard)")
    else:
        _check_hostname(validation.hostname, "spec.validation.hostname", errors)
    if validation.ca_certificate_refs and validation.well_known_ca_certificates:
        error(errors, "spec.validation", "must not specify both caCertificateRefs and wellKnownCACertificates")
    elif not validation.ca_certificate_refs and not validation.well_known_ca_certificates:
        error(errors, "spec.validation", "must specify either caCertificateRefs or wellKnownCACertificates")
    _too_many(validation.ca_certificate_refs, MAX_CA_CERTIFICATE_REFS, "spec.validation.caCertificateRefs", errors)
    _too_many(validation.subject_alt_names, MAX_SUBJECT_ALT_NAMES, "spec.validation.subjectAltNames", errors)
    for index, san in enumerate(validation.subject_alt_names):
        path = f"spec.validation.subjectAltNames[{index}]"
        if san.type not in ("Hostname", "URI"):
            error(errors, f"{path}.type", f'Unsupported value: "{san.type}": supported values: "Hostname", "URI"')
        elif san.type == "Hostname" and (not san.hostname or san.uri):
            error(errors, path, "hostname must be specified (and uri not) when type is Hostname")
        elif san.type == "URI" and (not san.uri or san.hostname):
            error(errors, path, "uri must be specified (and hostname not) when type is URI")


def validate_x_backend_traffic_policy(resource: Resource, errors: list[FieldError]) -> None:
    """The CRD's rules: 1-16 targets; a budget percent of 0-100; counts not negative."""
    assert isinstance(resource, XBackendTrafficPolicy)
    spec = resource.spec
    _validate_targets(spec.target_refs, errors)
    retry = spec.retry_constraint
    if retry is None:
        return
    percent = retry.budget.percent
    if percent is not None and not 0 <= percent <= 100:
        error(errors, "spec.retryConstraint.budget.percent", "must be between 0 and 100")
    if retry.min_retry_rate is not None and (retry.min_retry_rate.count or 0) < 0:
        error(errors, "spec.retryConstraint.minRetryRate.count", "must not be negative")
