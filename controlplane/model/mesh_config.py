"""Istio's MeshConfig (the ``mesh`` key of the ``istio`` ConfigMap): the fields we honour.

Only what the translator uses is modelled; every other MeshConfig field is accepted and
ignored (classes are LENIENT), so a user's existing mesh config loads unchanged. Telemetry
fields (access logs, tracing, providers) are validated with field paths, as istiod does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal

from controlplane.model.base import FieldError
from controlplane.model.checks import (
    check_fqdn,
    check_http_header_name,
    check_http_header_value,
    check_namespaced_host,
    is_ip,
)
from controlplane.model.decode import camel, decode, jfield
from controlplane.model.frozen import EMPTY

# Istio's built-in providers: "envoy" logs to /dev/stdout in the mesh access log format,
# "prometheus" is Envoy's own stats endpoint.
BUILTIN_ACCESS_LOG = "envoy"
BUILTIN_METRICS = "prometheus"


@dataclass(frozen=True, slots=True)
class LogFormat:
    """Exactly one of ``text`` (a format string) or ``labels`` (JSON object of operators)."""

    text: str | None = None
    labels: object = None  # FrozenDict of JSON values


@dataclass(frozen=True, slots=True)
class EnvoyFileAccessLogProvider:
    path: str = ""
    log_format: LogFormat | None = None


@dataclass(frozen=True, slots=True)
class ZipkinTracingProvider:
    LENIENT: ClassVar[bool] = True
    service: str = ""
    port: int = 0
    max_tag_length: int = 0
    enable_64bit_trace_id: bool = jfield("enable64bitTraceId", default=False)
    path: str = ""


@dataclass(frozen=True, slots=True)
class OpenTelemetryHttp:
    LENIENT: ClassVar[bool] = True
    path: str = ""
    timeout: timedelta | None = None


@dataclass(frozen=True, slots=True)
class OpenTelemetryTracingProvider:
    LENIENT: ClassVar[bool] = True
    service: str = ""
    port: int = 0
    max_tag_length: int = 0
    http: OpenTelemetryHttp | None = None


@dataclass(frozen=True, slots=True)
class PrometheusMetricsProvider:
    LENIENT: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ExtAuthzRequestBody:
    """``includeRequestBodyInCheck``: buffer the body and send it to the authorizer."""

    LENIENT: ClassVar[bool] = True
    max_request_bytes: int = 0
    allow_partial_message: bool = False
    pack_as_bytes: bool = False


@dataclass(frozen=True, slots=True)
class EnvoyExtAuthzHttpProvider:
    """``envoyExtAuthzHttp``: an HTTP external authorizer for AuthorizationPolicy CUSTOM.

    Header lists take exact names, ``prefix*`` and ``*suffix`` (case-insensitive)."""

    LENIENT: ClassVar[bool] = True
    service: str = ""  # "<namespace>/<hostname>", a registry hostname, or a host / IP outside it
    port: int | str = 0  # uint32 in Istio's API, which also reads "9000"
    timeout: timedelta | None = None  # Envoy's check timeout; Istio's default is 600s
    path_prefix: str = ""
    fail_open: bool = False
    status_on_error: str = ""
    include_headers_in_check: tuple[str, ...] = ()  # deprecated: includeRequestHeadersInCheck
    include_request_headers_in_check: tuple[str, ...] = ()
    include_additional_headers_in_check: Mapping[str, str] = field(default=EMPTY)
    include_request_body_in_check: ExtAuthzRequestBody | None = None
    headers_to_upstream_on_allow: tuple[str, ...] = ()
    headers_to_downstream_on_deny: tuple[str, ...] = ()
    headers_to_downstream_on_allow: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EnvoyExtAuthzGrpcProvider:
    """``envoyExtAuthzGrpc``: Envoy's ``envoy.service.auth.v3.Authorization`` over gRPC (HTTP
    and TCP chains)."""

    LENIENT: ClassVar[bool] = True
    service: str = ""
    port: int | str = 0
    timeout: timedelta | None = None
    fail_open: bool = False
    status_on_error: str = ""
    include_request_body_in_check: ExtAuthzRequestBody | None = None


PROVIDER_KINDS = (
    "envoy_file_access_log",
    "zipkin",
    "opentelemetry",
    "prometheus",
    "envoy_ext_authz_http",
    "envoy_ext_authz_grpc",
)


@dataclass(frozen=True, slots=True)
class ExtensionProvider:
    """One named provider; kinds stock Envoy cannot serve here (skywalking, stackdriver, ...)
    are kept by name with ``kind == ""`` and skipped when referenced."""

    LENIENT: ClassVar[bool] = True
    name: str = ""
    envoy_file_access_log: EnvoyFileAccessLogProvider | None = None
    zipkin: ZipkinTracingProvider | None = None
    opentelemetry: OpenTelemetryTracingProvider | None = None
    prometheus: PrometheusMetricsProvider | None = None
    envoy_ext_authz_http: EnvoyExtAuthzHttpProvider | None = None
    envoy_ext_authz_grpc: EnvoyExtAuthzGrpcProvider | None = None

    @property
    def kind(self) -> str:
        for kind in PROVIDER_KINDS:
            if getattr(self, kind) is not None:
                return kind
        return ""


@dataclass(frozen=True, slots=True)
class DefaultProviders:
    tracing: tuple[str, ...] = ()
    access_logging: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ZipkinAddress:
    LENIENT: ClassVar[bool] = True
    address: str = ""


@dataclass(frozen=True, slots=True)
class ProxyTracing:
    """``defaultConfig.tracing``: the mesh default sampling, and the legacy Zipkin address."""

    LENIENT: ClassVar[bool] = True
    sampling: float | None = None
    zipkin: ZipkinAddress | None = None
    max_path_tag_length: int = 0


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    LENIENT: ClassVar[bool] = True
    tracing: ProxyTracing | None = None


@dataclass(frozen=True, slots=True)
class OutboundTrafficPolicy:
    mode: Literal["ALLOW_ANY", "REGISTRY_ONLY"] = "ALLOW_ANY"


PathNormalizationMode = Literal["DEFAULT", "NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"]


@dataclass(frozen=True, slots=True)
class ProxyPathNormalization:
    """How sidecars normalize request paths before routing and authorization (Istio's
    ``pathNormalization``; DEFAULT is BASE: RFC 3986 normalization)."""

    normalization: PathNormalizationMode = "DEFAULT"


@dataclass(frozen=True, slots=True)
class IstioMeshConfig:
    """The document as written; ``None`` means "not set" so defaults stay the translator's."""

    LENIENT: ClassVar[bool] = True
    access_log_file: str = ""
    access_log_encoding: Literal["TEXT", "JSON"] = "TEXT"
    access_log_format: str = ""
    enable_tracing: bool = True
    default_providers: DefaultProviders | None = None
    extension_providers: tuple[ExtensionProvider, ...] = ()
    default_config: ProxyConfig | None = None
    root_namespace: str | None = None
    trust_domain: str | None = None
    trust_domain_aliases: tuple[str, ...] = ()
    outbound_traffic_policy: OutboundTrafficPolicy | None = None
    connect_timeout: timedelta | None = None
    enable_auto_mtls: bool | None = None
    path_normalization: ProxyPathNormalization | None = None


@dataclass(frozen=True, slots=True)
class TelemetryDefaults:
    """What the translator needs from MeshConfig for telemetry (hashable, immutable)."""

    access_log_file: str = ""
    access_log_encoding: str = "TEXT"
    access_log_format: str = ""
    enable_tracing: bool = True
    default_providers: DefaultProviders = field(default_factory=DefaultProviders)
    extension_providers: tuple[ExtensionProvider, ...] = ()
    tracing_sampling: float = 1.0  # percent, Istio's default
    legacy_zipkin_address: str = ""  # defaultConfig.tracing.zipkin.address ("host:port")
    max_path_tag_length: int = 0

    def provider(self, name: str) -> ExtensionProvider | None:
        for p in self.extension_providers:
            if p.name == name:
                return p
        if name == BUILTIN_ACCESS_LOG:
            return ExtensionProvider(
                name=name, envoy_file_access_log=EnvoyFileAccessLogProvider("/dev/stdout")
            )
        if name == BUILTIN_METRICS:
            return ExtensionProvider(name=name, prometheus=PrometheusMetricsProvider())
        return None


def telemetry_defaults(mesh: IstioMeshConfig) -> TelemetryDefaults:
    tracing = mesh.default_config.tracing if mesh.default_config is not None else None
    return TelemetryDefaults(
        access_log_file=mesh.access_log_file,
        access_log_encoding=mesh.access_log_encoding,
        access_log_format=mesh.access_log_format,
        enable_tracing=mesh.enable_tracing,
        default_providers=mesh.default_providers or DefaultProviders(),
        extension_providers=mesh.extension_providers,
        tracing_sampling=tracing.sampling
        if tracing is not None and tracing.sampling is not None
        else 1.0,
        legacy_zipkin_address=tracing.zipkin.address
        if tracing is not None and tracing.zipkin is not None
        else "",
        max_path_tag_length=tracing.max_path_tag_length if tracing is not None else 0,
    )


# --- validation ------------------------------------------------------------------------------


def _check_service(service: str, port: int, path: str, errors: list[FieldError]) -> None:
    if not service:
        errors.append(FieldError(f"{path}.service", "Required value"))
    if not 0 < port < 65536:
        errors.append(FieldError(f"{path}.port", f"port {port} must be in 1-65535"))


# Envoy's envoy.type.v3.StatusCode values, the codes statusOnError may name.
ENVOY_STATUS_CODES = frozenset({
    0, 100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307,
    308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
    421, 422, 423, 424, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
})  # fmt: skip
_EXT_AUTHZ_HEADER_LISTS = (
    "include_request_headers_in_check",
    "include_headers_in_check",
    "headers_to_upstream_on_allow",
    "headers_to_downstream_on_deny",
    "headers_to_downstream_on_allow",
)


def provider_port(port: int | str) -> int | None:
    """An ext_authz provider's port in 1-65535 (Istio reads "9000" too); None if it is not."""
    number = int(port) if isinstance(port, int) or port.isdigit() else 0
    return number if 0 < number < 65536 else None


def _check_ext_authz_service(service: str) -> str:
    """Istio's validateExtensionProviderService: a hostname or IP, or ``<namespace>/<hostname>``."""
    if not service:
        return "Required value: service must not be empty"
    if "/" in service:
        namespace, _, host = service.partition("/")
        problem = check_namespaced_host(service, allow_tilde=False)
        if not problem and (namespace == "*" or host.startswith("*")):
            problem = f"service {service!r}: want <namespace>/<hostname>, without wildcards"
        return problem
    if check_fqdn(service) and not is_ip(service):
        return f"invalid service {service!r}: not a hostname or an IP address"
    return ""


def validate_ext_authz(
    p: EnvoyExtAuthzHttpProvider | EnvoyExtAuthzGrpcProvider, path: str, errors: list[FieldError]
) -> None:
    """Istio's ValidateExtensionProviderEnvoyExtAuthz{HTTP,GRPC} and its builder's checks; the
    translator calls it too, and denies what a CUSTOM policy would send to a provider failing it."""

    def error(field_path: str, message: str) -> None:
        errors.append(FieldError(f"{path}.{field_path}", message))

    if provider_port(p.port) is None:
        error("port", f"port must be in the range [1, 65535], found: {p.port!r}")
    if problem := _check_ext_authz_service(p.service):
        error("service", problem)
    code = p.status_on_error
    if code and not code.lstrip("-").isdigit():
        error("statusOnError", f"invalid statusOnError value {code!r}: not an integer")
    elif code and int(code) not in ENVOY_STATUS_CODES:
        error("statusOnError", f"unsupported statusOnError value {code}: not an Envoy status code")
    if p.timeout is not None and p.timeout <= timedelta(0):
        error("timeout", "must be greater than 0")
    if not isinstance(p, EnvoyExtAuthzHttpProvider):
        return
    if p.path_prefix and not p.path_prefix.startswith("/"):
        error("pathPrefix", f"pathPrefix must begin with `/`, found: {p.path_prefix!r}")
    for attr in _EXT_AUTHZ_HEADER_LISTS:
        for index, header in enumerate(getattr(p, attr)):
            if header == "*" or not header:
                message = "a single wildcard or an empty name is not supported: use x-* or *-id"
                error(f"{camel(attr)}[{index}]", message)
    for key, value in p.include_additional_headers_in_check.items():
        if problem := check_http_header_name(key) or check_http_header_value(value):
            error(f"includeAdditionalHeadersInCheck[{key}]", problem)


def _validate_provider(p: ExtensionProvider, path: str, errors: list[FieldError]) -> None:
    kinds = [k for k in PROVIDER_KINDS if getattr(p, k) is not None]
    if len(kinds) > 1:
        errors.append(FieldError(path, f"more than one provider kind set: {', '.join(kinds)}"))
    if not kinds:
        errors.append(
            FieldError(
                path, "provider kind not supported with stock Envoy; it is ignored", "warning"
            )
        )
    if p.zipkin is not None:
        _check_service(p.zipkin.service, p.zipkin.port, f"{path}.zipkin", errors)
    if p.opentelemetry is not None:
        _check_service(
            p.opentelemetry.service, p.opentelemetry.port, f"{path}.opentelemetry", errors
        )
    if p.envoy_ext_authz_http is not None:
        validate_ext_authz(p.envoy_ext_authz_http, f"{path}.envoyExtAuthzHttp", errors)
    if p.envoy_ext_authz_grpc is not None:
        validate_ext_authz(p.envoy_ext_authz_grpc, f"{path}.envoyExtAuthzGrpc", errors)
    log = p.envoy_file_access_log
    if log is not None and log.log_format is not None:
        fmt, fpath = log.log_format, f"{path}.envoyFileAccessLog.logFormat"
        if fmt.text is not None and fmt.labels is not None:
            errors.append(FieldError(fpath, "only one of text or labels may be set"))
        if fmt.labels is not None and not isinstance(fmt.labels, dict):
            errors.append(FieldError(f"{fpath}.labels", "must be an object"))


def validate_mesh_config(mesh: IstioMeshConfig, errors: list[FieldError]) -> None:
    seen: set[str] = set()
    for index, p in enumerate(mesh.extension_providers):
        path = f"extensionProviders[{index}]"
        if not p.name:
            errors.append(FieldError(f"{path}.name", "Required value"))
        elif p.name in seen:
            errors.append(FieldError(f"{path}.name", f"duplicate provider name {p.name!r}"))
        seen.add(p.name)
        _validate_provider(p, path, errors)
    known = seen | {BUILTIN_ACCESS_LOG, BUILTIN_METRICS}
    if mesh.default_providers is not None:
        for kind in ("tracing", "accessLogging", "metrics"):
            attr = {"accessLogging": "access_logging"}.get(kind, kind)
            for index, name in enumerate(getattr(mesh.default_providers, attr)):
                if name not in known:
                    errors.append(
                        FieldError(
                            f"defaultProviders.{kind}[{index}]", f"unknown provider {name!r}"
                        )
                    )
    if mesh.access_log_encoding == "JSON" and mesh.access_log_format:
        try:
            parsed = json.loads(mesh.access_log_format)
        except ValueError as exc:
            errors.append(
                FieldError("accessLogFormat", f"not valid JSON for accessLogEncoding JSON: {exc}")
            )
        else:
            if not isinstance(parsed, dict):
                errors.append(
                    FieldError(
                        "accessLogFormat", "must be a JSON object for accessLogEncoding JSON"
                    )
                )
    tracing = mesh.default_config.tracing if mesh.default_config is not None else None
    if tracing is not None and tracing.sampling is not None and not 0 <= tracing.sampling <= 100:
        errors.append(FieldError("defaultConfig.tracing.sampling", "must be in range [0.0, 100.0]"))
    if tracing is not None and tracing.zipkin is not None and tracing.zipkin.address:
        host, _, port = tracing.zipkin.address.rpartition(":")
        if not host or not port.isdigit():
            errors.append(FieldError("defaultConfig.tracing.zipkin.address", "want host:port"))


def parse_mesh_config(document: Any, errors: list[FieldError]) -> IstioMeshConfig | None:
    """Decode and validate; errors (and warnings) are appended with field paths."""
    if document is None:
        document = {}
    mesh = decode(IstioMeshConfig, document, "", errors)
    if mesh is not None:
        validate_mesh_config(mesh, errors)
    return mesh
