"""The OS trust bundle the server sends for Istio's VERIFY_CERTIFICATE_AT_CLIENT: where OpenSSL
looks (SSL_CERT_FILE first), only certificates that parse, and off with the variable."""

from __future__ import annotations

from pathlib import Path

from controlplane.sources.system_ca import load_system_ca_bundle
from tests.harness.pki import LocalCA


def test_the_bundle_comes_from_ssl_cert_file_first(tmp_path: Path) -> None:
    ca = LocalCA("system-root")
    (tmp_path / "roots.pem").write_bytes(b"# a comment line\n" + ca.pem)
    bundle = load_system_ca_bundle({"SSL_CERT_FILE": str(tmp_path / "roots.pem")})
    assert bundle.strip() == ca.pem.strip()


def test_a_file_that_is_no_bundle_is_passed_over_and_the_switch_turns_it_off(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_bytes(b"not a certificate")
    found = load_system_ca_bundle({"SSL_CERT_FILE": str(tmp_path / "junk.pem")})
    assert b"not a certificate" not in found  # the next place's bundle (the OS's or certifi's), if any
    assert load_system_ca_bundle({"VERIFY_CERTIFICATE_AT_CLIENT": "false"}) == b""
