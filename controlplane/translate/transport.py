"""Transport security decisions: the upstream TLS of a cluster, the inbound TLS of a port.

This is the seam for the CA work: ISTIO_MUTUAL and auto-mTLS use the SDS secrets
``default`` (workload certificate) and ``ROOTCA`` (trust bundle) that secrets.py
produces; PeerAuthentication decides the inbound mode (``inbound_tls_mode``).
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from controlplane.translate.mesh import MeshConfig
from controlplane.translate.names import mtls_sni
from controlplane.translate.pb import ads_source, any_of

TLS_SOCKET = "envoy.transport_sockets.tls"
WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"
ISTIO_ALPN = ("istio-peer-exchange", "istio")

# Inbound modes, as PeerAuthentication's mtls.mode.
DISABLE = "DISABLE"
PERMISSIVE = "PERMISSIVE"
STRICT = "STRICT"


def _sds(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_source())


def _socket(context: tls_pb2.UpstreamTlsContext | tls_pb2.DownstreamTlsContext) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=any_of(context))


def _exact_sans(names: tuple[str, ...] | list[str]) -> list[common_pb2.SubjectAltNameMatcher]:
    return [
        common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.URI if n.startswith("spiffe://") else common_pb2.SubjectAltNameMatcher.DNS,
            matcher=string_pb2.StringMatcher(exact=n),
        )
        for n in names
    ]


def istio_mutual_context(sni: str, sans: tuple[str, ...] = ()) -> tls_pb2.UpstreamTlsContext:
    ctx = tls_pb2.UpstreamTlsContext(sni=sni)
    common = ctx.common_tls_context
    common.tls_certificate_sds_secret_configs.append(_sds(WORKLOAD_SECRET))
    combined = common.combined_validation_context
    combined.validation_context_sds_secret_config.CopyFrom(_sds(ROOT_SECRET))
    combined.default_validation_context.match_typed_subject_alt_names.extend(_exact_sans(sans))
    common.alpn_protocols.extend(ISTIO_ALPN)
    return ctx


def upstream_transport_socket(
    tls: Any,
    host: str,
    port: int,
    subset: str,
    mesh: MeshConfig,
    *,
    service_accounts: tuple[str, ...] = (),
    peer_supports_mtls: bool = False,
) -> base_pb2.TransportSocket | None:
    """The transport socket of ``outbound|port|subset|host``.

    ``tls`` is the DestinationRule's ClientTLSSettings after merging (or None). With no
    TLS settings, auto-mTLS (when enabled and the endpoints run our sidecars) gives
    ISTIO_MUTUAL; ``service_accounts`` are the SPIFFE IDs to verify.
    """
    mode = getattr(tls, "mode", None) if tls is not None else None
    if mode is None:
        if mesh.enable_auto_mtls and peer_supports_mtls:
            return _socket(istio_mutual_context(mtls_sni(host, port, subset), service_accounts))
        return None
    if mode == "DISABLE":
        return None
    if mode == "ISTIO_MUTUAL":
        sni = tls.sni or mtls_sni(host, port, subset)
        sans = tuple(tls.subject_alt_names) or service_accounts
        return _socket(istio_mutual_context(sni, sans))
    ctx = tls_pb2.UpstreamTlsContext(sni=tls.sni or host)
    common = ctx.common_tls_context
    if tls.credential_name:
        common.validation_context_sds_secret_config.CopyFrom(_sds(f"{tls.credential_name}-cacert"))
        if mode == "MUTUAL":
            common.tls_certificate_sds_secret_configs.append(_sds(tls.credential_name))
    else:
        if tls.ca_certificates and not tls.insecure_skip_verify:
            vc = common.validation_context
            vc.trusted_ca.filename = tls.ca_certificates
            vc.match_typed_subject_alt_names.extend(_exact_sans(tls.subject_alt_names))
        if mode == "MUTUAL" and tls.client_certificate:
            cert = common_pb2.TlsCertificate()
            cert.certificate_chain.filename = tls.client_certificate
            cert.private_key.filename = tls.private_key
            common.tls_certificates.append(cert)
    return _socket(ctx)


def inbound_tls_mode(peer_authentications: list[Any], port: int) -> str:
    """The mTLS mode of an inbound port from the PeerAuthentications selecting the proxy
    (most specific first). Until the CA lands nothing is enforced: DISABLE."""
    return DISABLE


def inbound_transport_socket(mode: str) -> base_pb2.TransportSocket | None:
    """The DownstreamTlsContext for STRICT/PERMISSIVE inbound chains (SDS secrets)."""
    if mode == DISABLE:
        return None
    ctx = tls_pb2.DownstreamTlsContext(require_client_certificate=base_pb2_bool(True))
    common = ctx.common_tls_context
    common.tls_certificate_sds_secret_configs.append(_sds(WORKLOAD_SECRET))
    common.combined_validation_context.validation_context_sds_secret_config.CopyFrom(_sds(ROOT_SECRET))
    common.alpn_protocols.extend(("h2", "http/1.1"))
    return _socket(ctx)


def base_pb2_bool(value: bool) -> Any:
    from google.protobuf import wrappers_pb2

    return wrappers_pb2.BoolValue(value=value)
