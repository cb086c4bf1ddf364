"""Istio's standard metric labels, each an Envoy access-log format string, per reporter.

``source`` is reported by the client's sidecar on its outbound listeners, ``destination`` by
the server's sidecar on its inbound ones, as Istio's stats filter does (istio/proxy
``istio_stats.cc``): the proxy's own facts are literal text; the peer's come from the headers
the sidecars exchange (``workload.PEER_HEADERS``; on TCP the client reads the server's from
its endpoint's metadata), its principal from the mTLS certificate, and
the service from the outbound cluster's ``istio`` metadata (Istio's ``services`` list) or, on
the server, the one service behind the port (else the Host header, Istio's fallback).
Values Envoy cannot find read ``unknown`` (``latest`` for a canonical revision), as Istio's.
"""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.translate.istio_metrics.workload import (
    UNKNOWN,
    WorkloadFacts,
    endpoint_peer_format,
    missing_default,
    peer_format,
)

SOURCE = "source"
DESTINATION = "destination"

# Istio's label order (istio_stats.cc); TCP metrics have neither response code nor gRPC status.
HTTP_LABELS = (
    "reporter",
    "source_workload", "source_canonical_service", "source_canonical_revision",
    "source_workload_namespace", "source_principal", "source_app", "source_version",
    "source_cluster",
    "destination_workload", "destination_workload_namespace", "destination_principal",
    "destination_app", "destination_version", "destination_service",
    "destination_canonical_service", "destination_canonical_revision",
    "destination_service_name", "destination_service_namespace", "destination_cluster",
    "request_protocol", "response_flags", "connection_security_policy", "response_code",
    "grpc_response_status",
)
TCP_LABELS = HTTP_LABELS[:-2]

_FACTS = ("workload", "canonical_service", "canonical_revision", "namespace", "app", "version", "cluster")
# Label suffix (after source_/destination_) of each fact.
_FACT_LABEL = {
    "workload": "workload", "canonical_service": "canonical_service",
    "canonical_revision": "canonical_revision", "namespace": "workload_namespace",
    "app": "app", "version": "version", "cluster": "cluster",
}


def cel(expression: str) -> str:
    """Envoy's built-in CEL formatter (stock Envoy 1.40)."""
    return f"%CEL({expression})%"


def literal(text: str) -> str:
    """Text as itself in a format string (``%`` escaped: a proxy's claimed name cannot make
    its own config unreadable)."""
    return text.replace("%", "%%")


def _or_unknown(condition: str, value: str) -> str:
    return cel(f"{condition} ? {value} : '{UNKNOWN}'")


_IS_GRPC = (
    "'content-type' in request.headers && request.headers['content-type'].startsWith('application/grpc')"
)
_SERVICE = "xds.cluster_metadata.filter_metadata.istio.services[0]"
_HAS_SERVICE = "has(xds.cluster_metadata.filter_metadata.istio)"


def _own(facts: WorkloadFacts, side: str) -> dict[str, str]:
    return {f"{side}_{_FACT_LABEL[f]}": literal(getattr(facts, f)) for f in _FACTS}


def _peer(side: str) -> dict[str, str]:
    return {f"{side}_{_FACT_LABEL[f]}": peer_format(f) for f in _FACTS}


def _unknown(side: str) -> dict[str, str]:
    return {f"{side}_{_FACT_LABEL[f]}": missing_default(f) for f in _FACTS}


def _endpoint_peer(side: str) -> dict[str, str]:
    return {f"{side}_{_FACT_LABEL[f]}": endpoint_peer_format(f) or missing_default(f) for f in _FACTS}


def _http_tail(labels: dict[str, str], *, mtls: str) -> None:
    labels["request_protocol"] = cel(f"{_IS_GRPC} ? 'grpc' : 'http'")
    labels["response_flags"] = "%RESPONSE_FLAGS%"
    labels["connection_security_policy"] = mtls
    labels["response_code"] = "%RESPONSE_CODE%"
    labels["grpc_response_status"] = "%GRPC_STATUS_NUMBER%"  # empty unless the call is gRPC


def _ordered(labels: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {name: labels[name] for name in names}


def source_labels(facts: WorkloadFacts, *, http: bool) -> dict[str, str]:
    """Reported by the client's sidecar: the destination from the server's response headers
    (HTTP), its certificate and the cluster's service."""
    labels: dict[str, str] = {"reporter": SOURCE, **_own(facts, "source")}
    labels["source_principal"] = _or_unknown(
        "has(upstream.uri_san_local_certificate)", "upstream.uri_san_local_certificate"
    )
    # TCP carries no headers: the server's facts come from its endpoint's metadata, as Istio's
    # (no app nor version there); its certificate names it too, below.
    labels.update(_peer("destination") if http else _endpoint_peer("destination"))
    labels["destination_principal"] = _or_unknown(
        "has(upstream.uri_san_peer_certificate)", "upstream.uri_san_peer_certificate"
    )
    labels["destination_service"] = _or_unknown(_HAS_SERVICE, f"{_SERVICE}.host")
    labels["destination_service_name"] = _or_unknown(_HAS_SERVICE, f"{_SERVICE}.name")
    labels["destination_service_namespace"] = _or_unknown(_HAS_SERVICE, f"{_SERVICE}.namespace")
    if not http:
        labels["request_protocol"] = "tcp"
        labels["response_flags"] = "%RESPONSE_FLAGS%"
        labels["connection_security_policy"] = UNKNOWN
        return _ordered(labels, TCP_LABELS)
    _http_tail(labels, mtls=UNKNOWN)  # Istio's client reporter does not say
    return _ordered(labels, HTTP_LABELS)


def destination_labels(
    facts: WorkloadFacts, service: tuple[str, str, str] | None, *, http: bool
) -> dict[str, str]:
    """Reported by the server's sidecar: the source from the client's request headers (HTTP)
    and its certificate; ``service`` (host, name, namespace) is the one service behind this
    port, if one."""
    labels: dict[str, str] = {"reporter": DESTINATION}
    if http:
        labels.update(_peer("source"))
    else:  # no headers on TCP: only the certificate names the client
        labels.update(_unknown("source"))
    labels["source_principal"] = _or_unknown("connection.mtls", "connection.uri_san_peer_certificate")
    labels.update(_own(facts, "destination"))
    labels["destination_principal"] = _or_unknown("connection.mtls", "connection.uri_san_local_certificate")
    if service is not None:
        (labels["destination_service"], labels["destination_service_name"],
         labels["destination_service_namespace"]) = (literal(v) for v in service)  # fmt: skip
    else:  # Istio's fallback: the Host header, else the canonical service
        labels["destination_service"] = "%REQ(:AUTHORITY)%" if http else literal(facts.canonical_service)
        labels["destination_service_name"] = literal(facts.canonical_service)
        labels["destination_service_namespace"] = literal(facts.namespace)
    mtls = cel("connection.mtls ? 'mutual_tls' : 'none'")
    if not http:
        labels["request_protocol"] = "tcp"
        labels["response_flags"] = "%RESPONSE_FLAGS%"
        labels["connection_security_policy"] = mtls
        return _ordered(labels, TCP_LABELS)
    _http_tail(labels, mtls=mtls)
    return _ordered(labels, HTTP_LABELS)
