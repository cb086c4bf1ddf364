"""X.509 building blocks: CA certificates, X.509-SVID leaves, CSRs, PEM helpers.

Leaves follow the SPIFFE X.509-SVID standard: exactly one URI SAN (the SPIFFE ID),
basicConstraints cA=false (critical), keyUsage critical with digitalSignature (plus
keyEncipherment for RSA keys) and no keyCertSign/cRLSign, EKU serverAuth + clientAuth.
The subject is empty, so the SAN extension is critical (RFC 5280 4.2.1.6).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controlplane.ca.errors import CAError
from controlplane.ca.keys import PrivateKey, PublicKey
from controlplane.ca.spiffe import SpiffeId, parse_spiffe_id

# Leaves start a little in the past so a proxy whose clock is behind still accepts them.
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)
# ... but by at most this fraction of a short lifetime: renewal at half life counts from
# notBefore, and a 5-minute backdate on a 10-second certificate would put it in the past.
MAX_BACKDATE_FRACTION = 0.1
ROOT_LIFETIME = timedelta(days=3650)
INTERMEDIATE_LIFETIME = timedelta(days=5 * 365)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def backdate_for(lifetime: timedelta) -> timedelta:
    """How far before "now" a leaf of this lifetime starts."""
    return min(CLOCK_SKEW_ALLOWANCE, lifetime * MAX_BACKDATE_FRACTION)


def _signature_hash(issuer_key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey) and issuer_key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _ca_name(trust_domain: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _authority_key_id(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _ca_extensions(
    builder: x509.CertificateBuilder, path_length: int | None
) -> x509.CertificateBuilder:
    return builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=path_length), critical=True
    ).add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )


def build_root(
    key: PrivateKey,
    *,
    trust_domain: str,
    now: datetime,
    lifetime: timedelta = ROOT_LIFETIME,
    common_name: str = "controlplane root CA",
) -> x509.Certificate:
    name = _ca_name(trust_domain, common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW_ALLOWANCE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return _ca_extensions(builder, path_length=None).sign(key, _signature_hash(key))


def build_intermediate(
    key: PrivateKey,
    *,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    trust_domain: str,
    now: datetime,
    lifetime: timedelta = INTERMEDIATE_LIFETIME,
    common_name: str = "controlplane intermediate CA",
    path_length: int = 0,
) -> x509.Certificate:
    """An intermediate CA (as in Istio's plugged-in ``cacerts``); used by tests and tooling.
    ``path_length`` 0 means it signs only leaves."""
    not_after = min(now + lifetime, issuer_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_ca_name(trust_domain, common_name))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW_ALLOWANCE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(issuer_cert), critical=False)
    )
    return _ca_extensions(builder, path_length=path_length).sign(
        issuer_key, _signature_hash(issuer_key)
    )


def build_leaf(
    public_key: PublicKey,
    *,
    spiffe_id: SpiffeId,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    not_before: datetime,
    not_after: datetime,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[IpAddress, ...] = (),
) -> x509.Certificate:
    """An X.509-SVID for ``spiffe_id``; extra DNS/IP SANs only for the control plane's server."""
    check_leaf_public_key(public_key)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id.uri)]
    sans += [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ip) for ip in ip_addresses]
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(issuer_cert), critical=False)
    )
    return builder.sign(issuer_key, _signature_hash(issuer_key))


def check_leaf_public_key(public_key: object) -> None:
    """Only keys Envoy and Istio proxies use: ECDSA P-256/P-384, RSA of 2048 bits or more."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ("secp256r1", "secp384r1"):
            raise CAError(f"unsupported ECDSA curve {public_key.curve.name}")
        return
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise CAError(f"RSA key of {public_key.key_size} bits is too small (minimum 2048)")
        return
    raise CAError(f"unsupported public key type {type(public_key).__name__}")


@dataclass(frozen=True)
class CertificateRequest:
    """What a CSR asks for, after its signature was checked."""

    public_key: PublicKey
    spiffe_id: SpiffeId
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


# Raised by cryptography for malformed or unusual DER (bad key encodings, unknown key or
# signature algorithms, wrong versions, duplicate extensions): all the client's fault.
_MALFORMED = (ValueError, UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension)


def parse_csr(pem: str | bytes) -> CertificateRequest:
    """Load a PEM CSR, verify its self-signature, and read its single SPIFFE URI SAN.

    Whatever the bytes, the only error raised is CAError."""
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else pem
    try:
        csr = x509.load_pem_x509_csr(data)
    except _MALFORMED:
        raise CAError("the CSR is not a valid PEM certificate request") from None
    try:
        if not csr.is_signature_valid:
            raise CAError("the CSR signature does not verify")
        public_key = csr.public_key()
    except _MALFORMED as exc:
        raise CAError(f"the CSR's key or signature cannot be read ({type(exc).__name__})") from None
    check_leaf_public_key(public_key)
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CAError("the CSR has no subjectAltName with a SPIFFE ID") from None
    except _MALFORMED as exc:
        raise CAError(f"the CSR's extensions cannot be read ({type(exc).__name__})") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise CAError(f"the CSR must carry exactly one URI SAN, found {len(uris)}")
    return CertificateRequest(
        public_key=public_key,  # type: ignore[arg-type]  # checked just above
        spiffe_id=parse_spiffe_id(uris[0]),
        dns_names=tuple(san.get_values_for_type(x509.DNSName)),
        ip_addresses=tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    )


def build_csr(key: PrivateKey, spiffe_id: SpiffeId) -> bytes:
    """A PEM CSR as Istio's agent sends it: no subject, one URI SAN. For tests and tools."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id.uri)]),
            critical=True,
        )
        .sign(key, _signature_hash(key))
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_certs_pem(data: bytes | str, source: str = "PEM") -> list[x509.Certificate]:
    raw = data.encode() if isinstance(data, str) else data
    if b"-----BEGIN CERTIFICATE-----" not in raw:
        return []
    try:
        return x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise CAError(f"cannot read certificates from {source}") from None


def fingerprint_sha256(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    return is_issued_by(cert, cert)


def is_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def is_ca_certificate(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
