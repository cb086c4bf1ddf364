"""Every certificate the CA issues is an X.509-SVID that OpenSSL accepts."""

from __future__ import annotations

import base64
import ipaddress
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controlplane.ca import (
    CAError,
    CertificateAuthority,
    KeyAlgorithm,
    SpiffeId,
    build_csr,
    generate_key,
    parse_csr,
)
from controlplane.ca.certs import CLOCK_SKEW_ALLOWANCE
from tests.ca.svid_rules import assert_openssl_accepts, assert_x509_svid, openssl_verify

SPIFFE = "spiffe://cluster.local/ns/default/sa/reviews"


def test_workload_certificate_is_an_x509_svid(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    issued = authority.issue_workload("default", "reviews")
    assert issued.spiffe_id == SPIFFE
    assert_x509_svid(issued.cert, spiffe_id=SPIFFE, issuer=authority.signer.cert)
    assert len(issued.cert.subject) == 0  # empty subject: the SPIFFE ID is the identity
    assert_openssl_accepts(tmp_path, issued.cert, authority.bundle.roots)


def test_default_lifetime_is_24h_backdated_for_clock_skew(fixed_now: datetime) -> None:
    authority = CertificateAuthority.self_signed("cluster.local", clock=lambda: fixed_now)
    later = fixed_now + timedelta(hours=1)  # so the CA's own notBefore does not bound it
    issued = CertificateAuthority(
        "cluster.local", authority.signer, authority.bundle, clock=lambda: later
    ).issue_workload("default", "reviews")
    assert issued.cert.not_valid_before_utc == later - CLOCK_SKEW_ALLOWANCE
    assert issued.cert.not_valid_after_utc == later + timedelta(hours=24)


def test_requested_lifetime_is_capped_at_the_maximum(authority: CertificateAuthority) -> None:
    issued = authority.issue_workload("default", "reviews", ttl=timedelta(days=365))
    lifetime = issued.cert.not_valid_after_utc - issued.cert.not_valid_before_utc
    assert lifetime <= timedelta(hours=24) + CLOCK_SKEW_ALLOWANCE
    short = authority.issue_workload("default", "reviews", ttl=timedelta(hours=1))
    short_lifetime = short.cert.not_valid_after_utc - short.cert.not_valid_before_utc
    assert short_lifetime <= timedelta(hours=1) + CLOCK_SKEW_ALLOWANCE


def test_leaf_never_outlives_the_signing_ca(fixed_now: datetime) -> None:
    authority = CertificateAuthority.self_signed("cluster.local", clock=lambda: fixed_now)
    near_root_expiry = authority.signer.root.not_valid_after_utc - timedelta(hours=2)
    late = CertificateAuthority(
        "cluster.local", authority.signer, authority.bundle, clock=lambda: near_root_expiry
    )
    issued = late.issue_workload("default", "reviews")
    assert issued.cert.not_valid_after_utc == authority.signer.root.not_valid_after_utc
    assert_x509_svid(issued.cert, spiffe_id=SPIFFE, issuer=authority.signer.root)
    expired = CertificateAuthority(
        "cluster.local",
        authority.signer,
        authority.bundle,
        clock=lambda: authority.signer.root.not_valid_after_utc + timedelta(seconds=1),
    )
    with pytest.raises(CAError, match="expired"):
        expired.issue_workload("default", "reviews")


def test_serials_are_random_and_distinct(authority: CertificateAuthority) -> None:
    key = generate_key()
    spiffe_id = SpiffeId.for_workload("cluster.local", "default", "reviews")
    serials = {
        authority.issue_for_public_key(key.public_key(), spiffe_id).cert.serial_number
        for _ in range(20)
    }
    assert len(serials) == 20


def test_rsa_keys_get_key_encipherment(tmp_path: Path) -> None:
    authority = CertificateAuthority.self_signed("cluster.local", algorithm=KeyAlgorithm.RSA_2048)
    issued = authority.issue_workload("default", "reviews")
    assert_x509_svid(issued.cert, spiffe_id=SPIFFE, issuer=authority.signer.cert)
    assert issued.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert_openssl_accepts(tmp_path, issued.cert, authority.bundle.roots)


def test_ecdsa_leaf_has_no_key_encipherment(authority: CertificateAuthority) -> None:
    issued = authority.issue_workload("default", "reviews")
    assert not issued.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_server_certificate_for_xds_tls(authority: CertificateAuthority, tmp_path: Path) -> None:
    issued = authority.issue_server()
    spiffe = "spiffe://cluster.local/ns/istio-system/sa/istiod"
    assert_x509_svid(issued.cert, spiffe_id=spiffe, issuer=authority.signer.cert)
    san = issued.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "istiod.istio-system.svc"} <= set(san.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert_openssl_accepts(tmp_path, issued.cert, authority.bundle.roots)
    # OpenSSL checks the host name and the IP address against the SANs too.
    for check in (["-verify_hostname", "istiod.istio-system.svc"], ["-verify_ip", "127.0.0.1"]):
        (tmp_path / "r.pem").write_text(authority.bundle.pem)
        (tmp_path / "l.pem").write_text(issued.cert_pem)
        ok = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(tmp_path / "r.pem"),
                *check,
                str(tmp_path / "l.pem"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
    assert issued.private_key_pem is not None and b"PRIVATE KEY" in issued.private_key_pem
    assert "PRIVATE" not in repr(issued)


def test_openssl_rejects_a_leaf_from_another_ca(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    stranger = CertificateAuthority.self_signed("cluster.local")
    issued = stranger.issue_workload("default", "reviews")
    result = openssl_verify(tmp_path, issued.cert, authority.bundle.roots)
    assert result.returncode != 0  # the openssl check itself can fail


def test_other_trust_domain_is_refused(authority: CertificateAuthority) -> None:
    key = generate_key()
    with pytest.raises(CAError, match="trust domain"):
        authority.issue_for_public_key(
            key.public_key(), SpiffeId.for_workload("evil.org", "a", "b")
        )


def test_csr_round_trip_and_signature_check() -> None:
    key = generate_key()
    spiffe_id = SpiffeId.for_workload("cluster.local", "default", "reviews")
    request = parse_csr(build_csr(key, spiffe_id))
    assert request.spiffe_id == spiffe_id
    assert request.dns_names == () and request.ip_addresses == ()
    with pytest.raises(CAError):
        parse_csr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")


def test_csr_with_tampered_signature_is_refused() -> None:
    key = generate_key()
    pem = build_csr(key, SpiffeId.for_workload("cluster.local", "default", "reviews"))
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature value
    body = base64.encodebytes(bytes(der)).decode()
    tampered = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(CAError):
        parse_csr(tampered)


def test_weak_rsa_key_is_refused(authority: CertificateAuthority) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CAError, match="too small"):
        authority.issue_for_public_key(weak.public_key(), authority.workload_id("default", "x"))


def test_issued_dates_are_utc(authority: CertificateAuthority) -> None:
    issued = authority.issue_workload("default", "reviews")
    assert issued.cert.not_valid_before_utc.tzinfo == UTC
