"""Checks every rule of the SPIFFE X.509-SVID standard (and RFC 5280) on a leaf, and runs
``openssl verify`` against the trust roots. Shared by the tests of this folder."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from controlplane.ca import cert_pem


def assert_x509_svid(
    leaf: x509.Certificate,
    *,
    spiffe_id: str,
    issuer: x509.Certificate,
    chain_above: Sequence[x509.Certificate] = (),
) -> None:
    ext = leaf.extensions
    # Exactly one URI SAN, the SPIFFE ID.
    san = ext.get_extension_for_class(x509.SubjectAlternativeName)
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [spiffe_id]
    # No CN requirement; with an empty subject the SAN must be critical (RFC 5280 4.2.1.6).
    if len(leaf.subject) == 0:
        assert san.critical
    # A leaf is not a CA.
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    # keyUsage critical, digitalSignature, never keyCertSign/cRLSign on a leaf.
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    if isinstance(leaf.public_key(), rsa.RSAPublicKey):
        assert usage.value.key_encipherment
    # EKU serverAuth + clientAuth.
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    # Signed by the issuer; validity inside the issuer's and every CA's above it.
    leaf.verify_directly_issued_by(issuer)
    for ca in (issuer, *chain_above):
        assert ca.not_valid_before_utc <= leaf.not_valid_before_utc
        assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    assert leaf.not_valid_before_utc < leaf.not_valid_after_utc
    # Serial: positive, random (at least 64 bits of entropy gives a large number).
    assert leaf.serial_number > 2**64


def openssl_verify(
    tmp_path: Path,
    leaf: x509.Certificate,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    purpose: str = "sslserver",
) -> subprocess.CompletedProcess[str]:
    """Run ``openssl verify -x509_strict``; returns the process (check returncode)."""
    folder = tmp_path / "openssl"
    folder.mkdir(exist_ok=True)
    (folder / "roots.pem").write_text("".join(cert_pem(r) for r in roots))
    (folder / "leaf.pem").write_text(cert_pem(leaf))
    args = [
        "openssl",
        "verify",
        "-x509_strict",
        "-purpose",
        purpose,
        "-CAfile",
        str(folder / "roots.pem"),
    ]
    if intermediates:
        (folder / "untrusted.pem").write_text("".join(cert_pem(c) for c in intermediates))
        args += ["-untrusted", str(folder / "untrusted.pem")]
    args.append(str(folder / "leaf.pem"))
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def assert_openssl_accepts(tmp_path: Path, leaf, roots, intermediates=()) -> None:
    for purpose in ("sslserver", "sslclient"):
        result = openssl_verify(tmp_path, leaf, roots, intermediates, purpose)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith(": OK")
