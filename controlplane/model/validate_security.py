"""PeerAuthentication, AuthorizationPolicy and RequestAuthentication validation (after Istio)."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlparse

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import (
    check_cidr_or_ip,
    check_duration,
    check_http_header_name,
    check_port,
)
from controlplane.model.decode import json_name
from controlplane.model.jwks import jwks_problem
from controlplane.model.security import (
    AuthorizationPolicy,
    AuthorizationPolicySpec,
    Condition,
    Operation,
    PeerAuthentication,
    RequestAuthentication,
    Source,
)
from controlplane.model.validate_common import error, validate_policy_targets

# Keys of AuthorizationPolicy ``when`` conditions (Istio security.ValidateAttribute).
_PLAIN_KEYS = frozenset({
    "source.ip", "remote.ip", "source.namespace", "source.principal", "source.serviceAccount",
    "source.trustDomain", "request.auth.principal", "request.auth.audiences",
    "request.auth.presenter", "destination.ip", "destination.port", "connection.sni",
})  # fmt: skip
_IP_KEYS = frozenset({"source.ip", "remote.ip", "destination.ip"})
_HEADER_KEY = re.compile(r"^request\.headers\[([^\[\]]+)\]$")
_CLAIMS_KEY = re.compile(r"^request\.auth\.claims(\[[^\[\]]+\])+$")
_EXPERIMENTAL_KEY = re.compile(r"^experimental\.envoy\.filters\.[^\[\]]+(\[[^\[\]]+\])+$")
_OUTPUT_HEADER = re.compile(r"^[-_A-Za-z0-9]+$")
# Identity attributes that an external authorizer (action CUSTOM) cannot match on.
_CUSTOM_UNSUPPORTED_SOURCE = (
    ("namespaces", "From.Namespaces"), ("not_namespaces", "From.NotNamespaces"),
    ("principals", "From.Principals"), ("not_principals", "From.NotPrincipals"),
    ("request_principals", "From.RequestPrincipals"),
    ("not_request_principals", "From.NotRequestPrincipals"),
)  # fmt: skip
_MEANINGLESS = (
    "{action} action without `rules` is meaningless as it will never be triggered, "
    "add an empty rule `{{}}` if you want it be triggered for every request"
)


# --- PeerAuthentication ----------------------------------------------------------------------


def validate_peer_authentication(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, PeerAuthentication)
    spec = resource.spec
    validate_policy_targets(spec, resource.meta.namespace, errors)
    if spec.port_level_mtls is None:
        return
    if not spec.port_level_mtls:
        error(
            errors,
            "spec.portLevelMtls",
            "spec.portLevelMtls in body should have at least 1 properties",
        )
    if spec.selector is None or not spec.selector.match_labels:
        error(
            errors,
            "spec.portLevelMtls",
            "portLevelMtls requires selector "
            "(mesh/namespace peer authentication cannot have port level mTLS)",
        )
    for key in spec.port_level_mtls:
        path = f"spec.portLevelMtls[{key}]"
        if not key.isdigit() or int(key) > 0xFFFFFFFF:
            error(errors, path, f"type conversion error from {key!r} to a uint32 port number")
        elif message := check_port(int(key)):
            error(errors, path, message)


# --- AuthorizationPolicy ---------------------------------------------------------------------


def validate_authorization_policy(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, AuthorizationPolicy)
    spec = resource.spec
    validate_policy_targets(spec, resource.meta.namespace, errors)
    if spec.action == "CUSTOM":
        if not spec.rules:
            error(errors, "spec.rules", _MEANINGLESS.format(action="CUSTOM"))
        elif spec.provider is None or not spec.provider.name:
            error(errors, "spec.provider.name", "Required value: `provider.name` must not be empty")
        _check_custom_rules(spec, errors)
    elif spec.provider is not None:
        error(
            errors,
            "spec.provider",
            f"`provider` must not be with non CUSTOM action, found {spec.action}",
        )
    if spec.action == "DENY" and not spec.rules:
        error(errors, "spec.rules", _MEANINGLESS.format(action="DENY"))
    for r_index, rule in enumerate(spec.rules):
        path = f"spec.rules[{r_index}]"
        for index, item in enumerate(rule.from_):
            f_path = f"{path}.from[{index}].source"
            if item.source is None:
                error(errors, f_path, "`from.source` must not be nil")
            else:
                _validate_source(item.source, f_path, errors)
        for index, rule_to in enumerate(rule.to):
            t_path = f"{path}.to[{index}].operation"
            if rule_to.operation is None:
                error(errors, t_path, "`to.operation` must not be nil")
            else:
                _validate_operation(rule_to.operation, t_path, errors)
        for index, condition in enumerate(rule.when):
            _validate_condition(condition, f"{path}.when[{index}]", errors)


def _check_custom_rules(spec: AuthorizationPolicySpec, errors: list[FieldError]) -> None:
    for r_index, rule in enumerate(spec.rules):
        for f_index, item in enumerate(rule.from_):
            if item.source is None:
                continue
            for attr, name in _CUSTOM_UNSUPPORTED_SOURCE:
                if getattr(item.source, attr):
                    path = f"spec.rules[{r_index}].from[{f_index}].source.{json_name(Source, attr)}"
                    error(errors, path, f"{name} is currently not supported with CUSTOM action")
        for w_index, condition in enumerate(rule.when):
            key = condition.key
            if key in ("source.namespace", "source.principal") or key.startswith("request.auth."):
                error(
                    errors,
                    f"spec.rules[{r_index}].when[{w_index}].key",
                    f"{key} is currently not supported with CUSTOM action",
                )


def _check_empty_values(item: Source | Operation, path: str, errors: list[FieldError]) -> None:
    """Istio's CheckEmptyValues: no empty string in any list of a source or an operation."""
    for f in dataclasses.fields(item):
        for index, value in enumerate(getattr(item, f.name)):
            if value == "":
                error(
                    errors,
                    f"{path}.{json_name(type(item), f.name)}[{index}]",
                    "empty value not allowed",
                )


def _validate_source(source: Source, path: str, errors: list[FieldError]) -> None:
    if not any(getattr(source, f.name) for f in dataclasses.fields(source)):
        error(errors, path, "`from.source` must not be empty")
    _check_empty_values(source, path, errors)
    if (source.service_accounts or source.not_service_accounts) and (
        source.namespaces or source.not_namespaces or source.principals or source.not_principals
    ):
        error(errors, path, "Cannot set serviceAccounts with namespaces or principals")
    for field, values in (
        ("serviceAccounts", source.service_accounts),
        ("notServiceAccounts", source.not_service_accounts),
    ):
        for index, value in enumerate(values):
            if value and value.count("/") > 1:
                error(
                    errors,
                    f"{path}.{field}[{index}]",
                    "service account must be <name> or <namespace>/<name>",
                )
    for field, values in (
        ("ipBlocks", source.ip_blocks),
        ("notIpBlocks", source.not_ip_blocks),
        ("remoteIpBlocks", source.remote_ip_blocks),
        ("notRemoteIpBlocks", source.not_remote_ip_blocks),
    ):
        for index, value in enumerate(values):
            if value and (message := check_cidr_or_ip(value)):
                error(errors, f"{path}.{field}[{index}]", message)


def _validate_operation(op: Operation, path: str, errors: list[FieldError]) -> None:
    if not any(getattr(op, f.name) for f in dataclasses.fields(op)):
        error(errors, path, "`to.operation` must not be empty")
    _check_empty_values(op, path, errors)
    for field, values in (("ports", op.ports), ("notPorts", op.not_ports)):
        for index, value in enumerate(values):
            if value:
                _check_port_string(value, f"{path}.{field}[{index}]", errors)
    for field, values in (("paths", op.paths), ("notPaths", op.not_paths)):
        for index, value in enumerate(values):
            _check_path_template(value, f"{path}.{field}[{index}]", errors)


def _check_port_string(value: str, path: str, errors: list[FieldError]) -> None:
    if not value.isdigit() or int(value) > 65535:
        error(errors, path, f"invalid port {value!r}: must be a number in 0..65535")


def _check_path_template(value: str, path: str, errors: list[FieldError]) -> None:
    """Istio path templates: ``{*}`` or ``{**}`` as whole segments, ``{**}`` at most once."""
    if "{" not in value and "}" not in value:
        return
    segments = value.split("/")
    operators = [s for s in segments if "{" in s or "}" in s]
    if any(s not in ("{*}", "{**}") for s in operators):
        error(
            errors,
            path,
            f"invalid path template {value!r}: operators must be whole segments {{*}} or {{**}}",
        )
    elif segments.count("{**}") > 1:
        error(errors, path, f"invalid path template {value!r}: {{**}} may appear once")


def _validate_condition(condition: Condition, path: str, errors: list[FieldError]) -> None:
    key = condition.key
    if not key:
        error(errors, f"{path}.key", "`key` must not be empty")
        return
    if not condition.values and not condition.not_values:
        error(errors, path, f"at least one of `values` or `notValues` must be set for key {key}")
    if key in _PLAIN_KEYS:
        pass
    elif match := _HEADER_KEY.match(key):
        # Pseudo-headers (``:method``, ``:path``, ``:authority``) are headers to Envoy; Istio accepts them.
        if message := check_http_header_name(match.group(1).removeprefix(":")):
            error(errors, f"{path}.key", message)
    elif not (_CLAIMS_KEY.match(key) or _EXPERIMENTAL_KEY.match(key)):
        error(errors, f"{path}.key", f"unknown attribute {key!r}")
        return
    for field, values in (("values", condition.values), ("notValues", condition.not_values)):
        for index, value in enumerate(values):
            v_path = f"{path}.{field}[{index}]"
            if key in _IP_KEYS and (message := check_cidr_or_ip(value)):
                error(errors, v_path, message)
            elif key == "destination.port":
                _check_port_string(value, v_path, errors)


# --- RequestAuthentication -------------------------------------------------------------------


def validate_request_authentication(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, RequestAuthentication)
    spec = resource.spec
    validate_policy_targets(spec, resource.meta.namespace, errors)
    for r_index, rule in enumerate(spec.jwt_rules):
        path = f"spec.jwtRules[{r_index}]"
        if not rule.issuer:
            error(errors, f"{path}.issuer", "issuer must be set")
        for index, audience in enumerate(rule.audiences):
            if not audience:
                error(
                    errors,
                    f"{path}.audiences[{index}]",
                    f"audiences[{index}] in body should be at least 1 chars long",
                )
        if rule.jwks_uri:
            parsed = urlparse(rule.jwks_uri)
            if not parsed.scheme:
                error(errors, f"{path}.jwksUri", "url must have scheme http:// or https://")
            elif parsed.scheme not in ("http", "https"):
                error(
                    errors, f"{path}.jwksUri", f"url scheme {parsed.scheme!r} must be http or https"
                )
            elif not parsed.hostname:
                error(errors, f"{path}.jwksUri", "url must have a host")
        if rule.jwks and (message := _check_jwks(rule.jwks)):
            error(errors, f"{path}.jwks", message)
        for index, header in enumerate(rule.from_headers):
            if not header.name:
                error(errors, f"{path}.fromHeaders[{index}].name", "Required value")
        for field, values in (
            ("fromParams", rule.from_params),
            ("fromCookies", rule.from_cookies),
            ("spaceDelimitedClaims", rule.space_delimited_claims),
        ):
            for index, value in enumerate(values):
                if not value:
                    error(
                        errors,
                        f"{path}.{field}[{index}]",
                        f"{field}[{index}] in body should be at least 1 chars long",
                    )
        for index, item in enumerate(rule.output_claim_to_headers):
            c_path = f"{path}.outputClaimToHeaders[{index}]"
            if not item.claim:
                error(errors, f"{c_path}.claim", "claim in body should be at least 1 chars long")
            if not item.header:
                error(errors, f"{c_path}.header", "header in body should be at least 1 chars long")
            elif not _OUTPUT_HEADER.match(item.header):
                error(
                    errors,
                    f"{c_path}.header",
                    f"header in body should match '{_OUTPUT_HEADER.pattern}'",
                )
        if rule.output_payload_to_header and (
            message := check_http_header_name(rule.output_payload_to_header)
        ):
            error(errors, f"{path}.outputPayloadToHeader", message)
        if rule.timeout is not None and (message := check_duration(rule.timeout)):
            error(
                errors, f"{path}.timeout", f"must be a valid duration greater than 1ms: {message}"
            )


def _check_jwks(jwks: str) -> str:
    """An inline JWKS: the check the JWKS fetcher applies to fetched documents too."""
    return jwks_problem(jwks)
