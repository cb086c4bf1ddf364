"""A Gateway server's TLS settings -> the DownstreamTlsContext of its filter chain.

Istio's BuildListenerTLSContext (pilot/pkg/networking/core/listener_builder.go and
security/model): ALPN h2 and http/1.1 for HTTPS (the mesh's for TLS servers that end mTLS);
a client certificate required for MUTUAL and ISTIO_MUTUAL, asked for (not required) with
OPTIONAL_MUTUAL; the certificate from

- ``credentialName`` (or ``credentialNames``): SDS ``kubernetes://<name>``, and for MUTUAL and
  OPTIONAL_MUTUAL the CA from ``kubernetes://<name>-cacert`` (the Secret ``<name>-cacert``, else
  the ``ca.crt``/``cacert`` key of ``<name>``), read from the router's own namespace; or the CA
  of ``caCertCredentialName`` (a Secret, or ``configmap://<ns>/<name>-cacert`` from the Gateway
  API's frontend validation), where ``insecureSkipVerify`` accepts clients it does not verify;
- ISTIO_MUTUAL: the router's own SVID (``default``) and the mesh roots (``ROOTCA``);
- else files (``serverCertificate``, ``privateKey``, ``caCertificates``) read by Envoy itself;

SAN, SPKI and hash checks of client certificates, protocol versions and cipher suites as
given.
"""

from __future__ import annotations

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.gateway import ServerTLSSettings
from controlplane.translate.credentials import CA_SUFFIX
from controlplane.translate.transport import (
    HTTP_ALPN,
    ISTIO_ALPN,
    ROOT_SECRET,
    WORKLOAD_SECRET,
    exact_sans,
    sds_config,
    trust_domain_san,
)

# Istio's prefix for Secrets a gateway reads (pilot/pkg/model/credentials).
GATEWAY_SDS_PREFIX = "kubernetes://"
VERIFYING_MODES = frozenset({"MUTUAL", "OPTIONAL_MUTUAL"})
_TLS_VERSIONS = {
    "TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
    "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
    "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
    "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
    "TLSV1_3": common_pb2.TlsParameters.TLSv1_3,
}


def credential_resource(name: str) -> str:
    """The SDS name of a Gateway's ``credentialName`` (Istio's ToResourceName)."""
    return name if "://" in name else GATEWAY_SDS_PREFIX + name


def _credentials(tls: ServerTLSSettings) -> tuple[str, ...]:
    return tuple(tls.credential_names) or ((tls.credential_name,) if tls.credential_name else ())


def _ca_resource(tls: ServerTLSSettings, names: tuple[str, ...]) -> str:
    """The SDS name of the CA that verifies clients: ``caCertCredentialName`` (as a CA: with
    the ``-cacert`` suffix Istio's SDS reads as "the CA of"), else the first credential's CA."""
    ca = tls.ca_cert_credential_name
    if not ca:
        return credential_resource(names[0] + CA_SUFFIX)
    return credential_resource(ca if ca.endswith(CA_SUFFIX) else ca + CA_SUFFIX)


def server_credential_names(tls: ServerTLSSettings | None) -> tuple[str, ...]:
    """The SDS names (``kubernetes://...``) a server's TLS makes the router ask for."""
    if tls is None or tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL"):
        return ()
    names = _credentials(tls)
    out = [credential_resource(n) for n in names]
    if names and tls.mode in VERIFYING_MODES:
        out.append(_ca_resource(tls, names))
    return tuple(out)


def downstream_tls_context(tls: ServerTLSSettings, *, trust_domain: str, mesh_alpn: bool = False) -> tls_pb2.DownstreamTlsContext:
    """The context that ends TLS for a server (not for PASSTHROUGH ones). ``mesh_alpn``: a TCP
    server ending ISTIO_MUTUAL, which mesh clients reach with Istio's ALPN."""
    required = tls.mode == "ISTIO_MUTUAL" or (tls.mode == "MUTUAL" and not tls.insecure_skip_verify)
    ctx = tls_pb2.DownstreamTlsContext(require_client_certificate=wrappers_pb2.BoolValue(value=required))
    common = ctx.common_tls_context
    common.alpn_protocols.extend(ISTIO_ALPN if mesh_alpn and tls.mode == "ISTIO_MUTUAL" else HTTP_ALPN)
    checks = common_pb2.CertificateValidationContext(
        match_typed_subject_alt_names=exact_sans(tls.subject_alt_names),
        verify_certificate_spki=list(tls.verify_certificate_spki),
        verify_certificate_hash=list(tls.verify_certificate_hash),
    )
    names = _credentials(tls)
    if tls.mode == "ISTIO_MUTUAL":
        common.tls_certificate_sds_secret_configs.append(sds_config(WORKLOAD_SECRET))
        combined = common.combined_validation_context
        combined.validation_context_sds_secret_config.CopyFrom(sds_config(ROOT_SECRET))
        if not tls.subject_alt_names:
            checks.match_typed_subject_alt_names.append(trust_domain_san(trust_domain))
        combined.default_validation_context.CopyFrom(checks)
    elif names:
        for name in names:
            common.tls_certificate_sds_secret_configs.append(sds_config(credential_resource(name)))
        if tls.mode in VERIFYING_MODES:
            combined = common.combined_validation_context
            combined.validation_context_sds_secret_config.CopyFrom(sds_config(_ca_resource(tls, names)))
            if tls.insecure_skip_verify:
                checks.trust_chain_verification = common_pb2.CertificateValidationContext.ACCEPT_UNTRUSTED
            combined.default_validation_context.CopyFrom(checks)
        elif tls.subject_alt_names:
            common.validation_context.CopyFrom(checks)
    else:
        cert = common.tls_certificates.add()
        cert.certificate_chain.filename = tls.server_certificate
        cert.private_key.filename = tls.private_key
        if tls.mode in VERIFYING_MODES and tls.ca_certificates:
            checks.trusted_ca.filename = tls.ca_certificates
            if tls.ca_crl:
                checks.crl.filename = tls.ca_crl
            common.validation_context.CopyFrom(checks)
    if tls.cipher_suites or tls.min_protocol_version != "TLS_AUTO" or tls.max_protocol_version != "TLS_AUTO":
        params = common.tls_params
        params.tls_minimum_protocol_version = _TLS_VERSIONS[tls.min_protocol_version]
        params.tls_maximum_protocol_version = _TLS_VERSIONS[tls.max_protocol_version]
        params.cipher_suites.extend(tls.cipher_suites)
    return ctx
