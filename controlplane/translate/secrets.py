"""Envoy SDS secrets for a workload: ``default`` (its certificate and key) and ``ROOTCA``
(the trust bundle), named as Istio names them. Pure: PEM in, protobuf out."""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

DEFAULT_CERTIFICATE_SECRET = "default"
ROOT_CA_SECRET = "ROOTCA"
# The OS trust bundle the control plane found (MeshConfig.system_ca_bundle): Istio's "system" CA.
# A colon cannot appear in a Secret's name, so no credentialName can shadow it.
SYSTEM_CA_SECRET = "file-root:system"


def _bytes(pem: str | bytes) -> bytes:
    return pem.encode("ascii") if isinstance(pem, str) else pem


def tls_certificate_secret(
    cert_chain_pem: str | bytes,
    private_key_pem: str | bytes,
    name: str = DEFAULT_CERTIFICATE_SECRET,
) -> secret_pb2.Secret:
    """The leaf followed by its intermediates, and the private key (Envoy redacts it in
    its config dump)."""
    return secret_pb2.Secret(
        name=name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=_bytes(cert_chain_pem)),
            private_key=base_pb2.DataSource(inline_bytes=_bytes(private_key_pem)),
        ),
    )


def validation_context_secret(
    trust_bundle: str | bytes | Sequence[str], name: str = ROOT_CA_SECRET
) -> secret_pb2.Secret:
    """Every trusted root (both during a rotation) as one ``trusted_ca``."""
    if isinstance(trust_bundle, (str, bytes)):
        pem = _bytes(trust_bundle)
    else:
        pem = "".join(p if p.endswith("\n") else p + "\n" for p in trust_bundle).encode("ascii")
    return secret_pb2.Secret(
        name=name,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_bytes=pem),
        ),
    )


def workload_secrets(
    cert_chain_pem: str | bytes,
    private_key_pem: str | bytes,
    trust_bundle: str | bytes | Sequence[str],
) -> tuple[secret_pb2.Secret, secret_pb2.Secret]:
    """The two secrets every sidecar asks for: ``(default, ROOTCA)``."""
    return (
        tls_certificate_secret(cert_chain_pem, private_key_pem),
        validation_context_secret(trust_bundle),
    )
