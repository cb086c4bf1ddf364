"""DestinationRule ``credentialName``: Kubernetes Secrets -> the SDS secrets Envoy asks for.

A cluster whose TLS (SIMPLE or MUTUAL) names ``credentialName: <name>`` asks SDS for
``<name>-cacert`` (the CA that verifies the server) and, with MUTUAL, ``<name>`` (the client
certificate and key). The Secrets are read as Istio's credentials controller reads them
(pilot/pkg/credentials/kube/secrets.go):

- ``<name>``: keys ``cert``/``key`` (generic Secret), else ``tls.crt``/``tls.key``
  (``kubernetes.io/tls``);
- ``<name>-cacert``: a Secret of that very name if there is one, else Secret ``<name>``;
  key ``cacert`` (generic), else ``ca.crt``; with a CRL from ``crl`` / ``ca.crl``;
- as in Istio, the role follows the name: every name ending in ``-cacert`` is a CA.

Who may read them (only the proxy's own namespace) is the caller's rule. A Secret that is
missing or malformed gives a CredentialProblem naming the Secret and the field, never any
of its bytes; its resource is then not served and nothing else is affected. PEM is parsed
here because Envoy rejects a whole SDS response when one secret in it is bad.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from controlplane.model.destination_rule import ClientTLSSettings
from controlplane.model.kubernetes import ConfigMap, Secret
from controlplane.translate.secrets import (
    DEFAULT_CERTIFICATE_SECRET,
    ROOT_CA_SECRET,
    SYSTEM_CA_SECRET,
    tls_certificate_secret,
    validation_context_secret,
)

CA_SUFFIX = "-cacert"
# (certificate, key) pairs in Istio's order: generic Secret keys first.
CERT_KEY_PAIRS = (("cert", "key"), ("tls.crt", "tls.key"))
# (CA, CRL) keys in Istio's order.
CA_KEYS = (("cacert", "crl"), ("ca.crt", "ca.crl"))
# The workload's own SDS names: a credential of the same name would be shadowed by them.
RESERVED = frozenset({DEFAULT_CERTIFICATE_SECRET, ROOT_CA_SECRET})
# Key types Envoy loads for a TLS certificate (it refuses the others, and smaller RSA keys).
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_MIN_RSA_BITS = 2048

Lookup = Callable[[str, str], Secret | None]  # (namespace, name) -> Secret


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    """Why SDS resource ``resource`` of ``namespace`` is not served."""

    resource: str
    namespace: str
    secret: str  # the Secret's (or ConfigMap's) name
    field: str  # e.g. "data[tls.key]"; "" for the Secret as a whole
    message: str
    kind: str = "Secret"  # or ConfigMap: a Gateway API caCertificateRef

    def __str__(self) -> str:
        where = f"{self.kind} {self.namespace}/{self.secret}" + (f" {self.field}" if self.field else "")
        return f"credentialName {self.resource!r}: {where}: {self.message}"


def credential_resource_names(tls: ClientTLSSettings | None) -> tuple[str, ...]:
    """The SDS names a DestinationRule's ClientTLSSettings may make a cluster ask for (see
    transport.upstream_transport_socket; the system CA's is served only where the server
    found a bundle, builders/credentials.py)."""
    if tls is None or tls.mode not in ("SIMPLE", "MUTUAL"):
        return ()
    name = tls.credential_name
    if not name:
        return (SYSTEM_CA_SECRET,) if verifies_with_system_ca(tls) else ()
    return (name, name + CA_SUFFIX) if tls.mode == "MUTUAL" else (name + CA_SUFFIX,)


def verifies_with_system_ca(tls: ClientTLSSettings) -> bool:
    """SIMPLE or MUTUAL TLS that names no CA and does not skip verification: Istio checks the
    server against the OS trust bundle (VERIFY_CERTIFICATE_AT_CLIENT)."""
    return (tls.mode in ("SIMPLE", "MUTUAL") and not tls.credential_name and not tls.ca_certificates
            and not tls.insecure_skip_verify)


def resolve(lookup: Lookup, namespace: str, resource: str) -> secret_pb2.Secret | CredentialProblem:
    """The SDS secret ``resource`` from the Secrets of ``namespace``, or why not."""
    if resource in RESERVED:
        return CredentialProblem(resource, namespace, resource, "", "the name is reserved for the workload's own certificate")
    if resource.endswith(CA_SUFFIX):
        secret = lookup(namespace, resource) or lookup(namespace, resource.removesuffix(CA_SUFFIX))
        if secret is None:
            return CredentialProblem(
                resource, namespace, resource.removesuffix(CA_SUFFIX), "", f"not found (nor Secret {resource})"
            )
        return _ca_secret(resource, secret)
    secret = lookup(namespace, resource)
    if secret is None:
        return CredentialProblem(resource, namespace, resource, "", "not found")
    return _key_pair_secret(resource, secret)


def config_map_ca(resource: str, namespace: str, name: str, config_map: ConfigMap | None) -> secret_pb2.Secret | CredentialProblem:
    """SDS secret ``resource`` (``configmap://<ns>/<name>-cacert``): the ``ca.crt`` of ConfigMap
    ``namespace/name`` as a validation context, or why not."""
    if config_map is None:
        return CredentialProblem(resource, namespace, name, "", "not found", kind="ConfigMap")
    ca = config_map.ca_certificate
    if not ca:
        return CredentialProblem(resource, namespace, name, "data", "has neither cacert nor ca.crt", kind="ConfigMap")
    try:
        x509.load_pem_x509_certificates(ca)
    except ValueError:
        return CredentialProblem(resource, namespace, name, "data[ca.crt]", "is not a PEM certificate", kind="ConfigMap")
    return validation_context_secret(ca, name=resource)


def _problem(resource: str, secret: Secret, field: str, message: str) -> CredentialProblem:
    return CredentialProblem(resource, secret.meta.namespace, secret.meta.name, field, message)


def _keys(data: Mapping[str, bytes]) -> str:
    return ", ".join(sorted(data)) or "none"


def _key_pair_secret(resource: str, secret: Secret) -> secret_pb2.Secret | CredentialProblem:
    data = secret.data
    pair = next((p for p in CERT_KEY_PAIRS if data.get(p[0]) and data.get(p[1])), None)
    if pair is None:
        present = next((p for p in CERT_KEY_PAIRS if p[0] in data or p[1] in data), None)
        if present is not None:
            empty = present[0] if not data.get(present[0]) else present[1]
            return _problem(resource, secret, f"data[{empty}]", "missing or empty")
        return _problem(resource, secret, "data", f"has neither cert/key nor tls.crt/tls.key (keys: {_keys(data)})")
    cert_field, key_field = (f"data[{k}]" for k in pair)
    try:
        chain = x509.load_pem_x509_certificates(data[pair[0]])
    except ValueError:
        return _problem(resource, secret, cert_field, "is not a PEM certificate")
    try:
        key = serialization.load_pem_private_key(data[pair[1]], password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # malformed, encrypted, unsupported
        return _problem(resource, secret, key_field, "is not an unencrypted PEM private key")
    if not _envoy_loads(key):
        return _problem(
            resource, secret, key_field, "Envoy accepts RSA (2048 bits or more) or ECDSA P-256/P-384/P-521 keys only"
        )
    if _spki(key.public_key()) != _spki(chain[0].public_key()):
        return _problem(resource, secret, key_field, f"does not match the certificate in {cert_field}")
    return tls_certificate_secret(data[pair[0]], data[pair[1]], name=resource)


def _ca_secret(resource: str, secret: Secret) -> secret_pb2.Secret | CredentialProblem:
    data = secret.data
    keys = next((k for k in CA_KEYS if data.get(k[0])), None)
    if keys is None:
        present = next((k[0] for k in CA_KEYS if k[0] in data), None)
        if present is not None:
            return _problem(resource, secret, f"data[{present}]", "is empty")
        return _problem(resource, secret, "data", f"has neither cacert nor ca.crt (keys: {_keys(data)})")
    ca_key, crl_key = keys
    try:
        x509.load_pem_x509_certificates(data[ca_key])
    except ValueError:
        return _problem(resource, secret, f"data[{ca_key}]", "is not a PEM certificate")
    out = validation_context_secret(data[ca_key], name=resource)
    crl = data.get(crl_key)
    if crl:
        try:
            x509.load_pem_x509_crl(crl)
        except ValueError:
            return _problem(resource, secret, f"data[{crl_key}]", "is not a PEM certificate revocation list")
        out.validation_context.crl.inline_bytes = crl
    return out


def _envoy_loads(key: PrivateKeyTypes) -> bool:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.key_size >= _MIN_RSA_BITS
    return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, _EC_CURVES)


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
