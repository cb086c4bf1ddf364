"""Validators shared by several kinds: string matches, selectors, exportTo, targetRefs, ports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from controlplane.model.base import FieldError
from controlplane.model.checks import (
    MIN_DURATION,
    check_dns1123_label,
    check_duration,
    check_fractional_percent,
    check_label_key,
    check_label_value,
    check_percent,
    check_port,
    check_regex,
)
from controlplane.model.common import Percent, PolicyTargetReference, Port, StringMatch

# Istio's protocol.Parse, case-insensitive.
PROTOCOLS = frozenset(
    {
        "TCP",
        "UDP",
        "GRPC",
        "GRPC-WEB",
        "HTTP",
        "HTTP_PROXY",
        "HTTP2",
        "HTTPS",
        "TLS",
        "MONGO",
        "REDIS",
        "MYSQL",
        "HBONE",
    }
)
_GROUP = re.compile(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
# Istio's CEL rule on targetRef(s) of policies.
_TARGET_KINDS = {
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
}


def error(errors: list[FieldError], path: str, message: str) -> None:
    errors.append(FieldError(path, message))


def warning(errors: list[FieldError], path: str, message: str) -> None:
    errors.append(FieldError(path, message, "warning"))


def validate_string_match(
    match: StringMatch, path: str, errors: list[FieldError], *, allow_empty_exact: bool = True
) -> None:
    chosen = [
        n
        for n, v in (("exact", match.exact), ("prefix", match.prefix), ("regex", match.regex))
        if v is not None
    ]
    if len(chosen) > 1:
        error(
            errors, path, f"only one of exact, prefix or regex may be set (got {', '.join(chosen)})"
        )
    if match.regex is not None:
        if match.regex == "":
            error(errors, f"{path}.regex", "regex string match should not be empty")
        elif message := check_regex(match.regex):
            error(errors, f"{path}.regex", message)
    if not allow_empty_exact and match.exact == "":
        error(errors, f"{path}.exact", "exact match should not be empty")


def validate_labels(labels: Mapping[str, str], path: str, errors: list[FieldError]) -> None:
    """Kubernetes label syntax (Istio's labels.Instance.Validate)."""
    for key, value in labels.items():
        message = check_label_key(key) or check_label_value(value)
        if message:
            error(errors, f"{path}[{key}]", message)


def validate_workload_selector(
    labels: Mapping[str, str], path: str, errors: list[FieldError]
) -> None:
    """A workload selector: label syntax, no wildcards; an empty one selects the namespace."""
    for key, value in labels.items():
        if not key:
            error(errors, f"{path}[{key}]", "empty key is not supported in selector")
        elif "*" in key or "*" in value:
            error(errors, f"{path}[{key}]", "wildcard is not supported in selector")
        elif message := check_label_key(key) or check_label_value(value):
            error(errors, f"{path}[{key}]", message)
    if not labels:
        warning(
            errors,
            path,
            "workload selector specified without labels: it applies to every "
            "workload in the namespace",
        )


def validate_export_to(
    export_to: tuple[str, ...],
    path: str,
    namespace: str,
    errors: list[FieldError],
    *,
    service_entry: bool = False,
    workload_selector: bool = False,
) -> None:
    """Istio's validateExportTo: ".", "*", namespaces; "~" (no one) for ServiceEntry only."""
    seen: set[str] = set()
    for index, value in enumerate(export_to):
        item = f"{path}[{index}]"
        key = namespace if value == "." else value
        if key in seen:
            error(errors, item, f"duplicate entries in exportTo for entry {value!r}")
            continue
        if value == "~" and not service_entry:
            error(errors, item, "exportTo '~' (no one) is only allowed on ServiceEntry")
        elif value not in (".", "*", "~") and (message := check_dns1123_label(value)):
            error(errors, item, f"exportTo: {message}")
        seen.add(key)
    if "*" in seen and len(export_to) > 1:
        error(
            errors,
            path,
            "cannot have both public (*) and non-public exportTo values for a resource",
        )
    if "~" in seen and len(export_to) > 1:
        error(errors, path, "cannot export service entry to no one (~) and someone")
    if workload_selector and seen:
        if namespace not in seen:
            error(
                errors,
                path,
                "destination rule with workload selector cannot have exportTo "
                "beyond current namespace",
            )
        elif len(seen) > 1:
            error(
                errors,
                path,
                "destination rule with workload selector cannot have multiple entries in exportTo",
            )


def validate_target_ref(
    ref: PolicyTargetReference, path: str, namespace: str, errors: list[FieldError]
) -> None:
    if not _GROUP.match(ref.group):
        error(errors, f"{path}.group", f"{path}.group in body should match '{_GROUP.pattern}'")
    if not _KIND.match(ref.kind):
        error(errors, f"{path}.kind", f"{path}.kind in body should match '{_KIND.pattern}'")
    elif (ref.group, ref.kind) not in _TARGET_KINDS:
        error(
            errors,
            path,
            "Support kinds are core/Service, networking.istio.io/ServiceEntry, "
            "gateway.networking.k8s.io/Gateway and gateway.networking.k8s.io/GatewayClass",
        )
    if ref.namespace and ref.namespace != namespace:
        error(errors, f"{path}.namespace", "cross namespace referencing is not currently supported")


def validate_policy_targets(spec: object, namespace: str, errors: list[FieldError]) -> None:
    """``selector``, ``targetRef`` and ``targetRefs``: at most one of them, each well-formed."""
    selector = getattr(spec, "selector", None)
    target_ref = getattr(spec, "target_ref", None)
    target_refs = getattr(spec, "target_refs", ())
    set_count = sum(1 for x in (selector, target_ref, target_refs or None) if x is not None)
    if set_count > 1:
        error(errors, "spec", "only one of targetRefs, targetRef or selector can be set")
    if selector is not None:
        validate_workload_selector(selector.match_labels, "spec.selector.matchLabels", errors)
    if target_ref is not None:
        validate_target_ref(target_ref, "spec.targetRef", namespace, errors)
    for index, ref in enumerate(target_refs):
        validate_target_ref(ref, f"spec.targetRefs[{index}]", namespace, errors)


def validate_percent(
    percent: Percent | None, path: str, errors: list[FieldError], *, fractional: bool = False
) -> None:
    """0..100; ``fractional`` (fault injection) also refuses values below 0.0001 but above 0."""
    if percent is None:
        return
    check = check_fractional_percent if fractional else check_percent
    if message := check(percent.value):
        error(errors, f"{path}.value", message)


def validate_int_percent(value: int | None, path: str, errors: list[FieldError]) -> None:
    if value is not None and not 0 <= value <= 100:
        error(errors, path, f"percentage {value} is not in range 0..100")


def validate_duration(
    value: timedelta | None,
    path: str,
    errors: list[FieldError],
    *,
    minimum: timedelta = MIN_DURATION,
) -> None:
    if value is not None and (message := check_duration(value, minimum=minimum)):
        error(errors, path, message)


def validate_non_negative(value: int | None, path: str, errors: list[FieldError]) -> None:
    if value is not None and value < 0:
        error(errors, path, f"must be non-negative, got {value}")


def validate_protocol(protocol: str, path: str, errors: list[FieldError]) -> None:
    """Istio's protocol.Parse; the empty string (protocol sniffing) is left to the caller."""
    if protocol.upper() not in PROTOCOLS:
        error(
            errors,
            path,
            f"invalid protocol {protocol!r}, supported protocols are HTTP, HTTPS, "
            "HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP, TLS",
        )


def validate_port(
    port: Port,
    path: str,
    errors: list[FieldError],
    *,
    protocol_required: bool = True,
    name_required: bool = False,
    check_name: bool = True,
    allow_zero: bool = False,
) -> None:
    if message := check_port(port.number, allow_zero=allow_zero):
        error(errors, f"{path}.number", message)
    if port.protocol or protocol_required:
        validate_protocol(port.protocol, f"{path}.protocol", errors)
    if name_required and not port.name:
        error(errors, f"{path}.name", "port name must be set")
    elif port.name and check_name and check_dns1123_label(port.name):
        error(errors, f"{path}.name", f"invalid port name: {port.name}")
    if port.target_port and (message := check_port(port.target_port)):
        error(errors, f"{path}.targetPort", message)
