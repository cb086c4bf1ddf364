"""The CA folder: created once with 0600 keys, never overwritten; Istio cacerts plugged in."""

from __future__ import annotations

import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controlplane.ca import (
    CAError,
    KeyAlgorithm,
    build_intermediate,
    build_root,
    cert_pem,
    generate_key,
    load_ca_folder,
    load_or_init_ca,
    private_key_pem,
)
from controlplane.ca.folder import CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT, init_ca_folder
from tests.ca.svid_rules import assert_openssl_accepts, assert_x509_svid, openssl_verify

NOW = datetime.now(UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_a_root_with_a_0600_key(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    authority = load_or_init_ca(folder, "cluster.local")
    assert _mode(folder / CA_KEY) == 0o600
    assert _mode(folder) == 0o700
    for name in (CA_CERT, CERT_CHAIN, ROOT_CERT):
        assert (folder / name).read_text() == cert_pem(authority.signer.root)
    issued = authority.issue_workload("default", "reviews")
    assert_openssl_accepts(tmp_path, issued.cert, authority.bundle.roots)


def test_key_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_init_ca(tmp_path / "certs", "cluster.local")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "certs" / CA_KEY) == 0o600


def test_second_start_loads_the_same_root(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    first = load_or_init_ca(folder, "cluster.local")
    key_bytes = (folder / CA_KEY).read_bytes()
    second = load_or_init_ca(folder, "cluster.local")
    assert second.signer.root == first.signer.root
    assert (folder / CA_KEY).read_bytes() == key_bytes


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / ROOT_CERT).write_text("keep me")
    with pytest.raises(CAError, match="refusing"):
        init_ca_folder(folder, "cluster.local", algorithm=KeyAlgorithm.ECDSA_P256, now=NOW)
    assert (folder / ROOT_CERT).read_text() == "keep me"
    assert not (folder / CA_KEY).exists()


def test_a_symlink_planted_as_the_key_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    folder.mkdir()
    target = tmp_path / "elsewhere"
    (folder / CA_KEY).symlink_to(target)
    with pytest.raises(CAError):
        init_ca_folder(folder, "cluster.local", algorithm=KeyAlgorithm.ECDSA_P256, now=NOW)
    assert not target.exists()


def test_readable_key_warns_and_strict_mode_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "certs"
    load_or_init_ca(folder, "cluster.local")
    os.chmod(folder / CA_KEY, 0o644)
    with caplog.at_level(logging.WARNING):
        load_ca_folder(folder, "cluster.local")
    assert "can be read by other users" in caplog.text
    with pytest.raises(CAError, match="other users"):
        load_ca_folder(folder, "cluster.local", strict_permissions=True)
    os.chmod(folder / CA_KEY, 0o666)
    with pytest.raises(CAError, match="world-writable"):
        load_ca_folder(folder, "cluster.local")


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


@pytest.fixture
def istio_cacerts(tmp_path: Path):
    """Istio's plug-in layout: an offline root and an intermediate the control plane signs with."""
    root_key = generate_key()
    root = build_root(root_key, trust_domain="cluster.local", now=NOW, common_name="Offline Root")
    ca_key = generate_key()
    intermediate = build_intermediate(
        ca_key, issuer_cert=root, issuer_key=root_key, trust_domain="cluster.local", now=NOW
    )
    folder = tmp_path / "cacerts"
    folder.mkdir()
    _write(folder / CA_KEY, private_key_pem(ca_key), 0o600)
    _write(folder / CA_CERT, cert_pem(intermediate))
    _write(
        folder / CERT_CHAIN, cert_pem(intermediate) + cert_pem(root)
    )  # as Istio's tooling writes it
    _write(folder / ROOT_CERT, cert_pem(root))
    return folder, root, intermediate


def test_plugged_in_cacerts_with_an_intermediate(tmp_path: Path, istio_cacerts) -> None:
    folder, root, intermediate = istio_cacerts
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    authority = load_or_init_ca(folder, "cluster.local")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # used as is
    assert authority.signer.cert == intermediate
    assert authority.signer.intermediates == (intermediate,)
    assert authority.signer.root == root
    issued = authority.issue_workload("default", "reviews")
    spiffe = "spiffe://cluster.local/ns/default/sa/reviews"
    assert_x509_svid(issued.cert, spiffe_id=spiffe, issuer=intermediate, chain_above=(root,))
    # The chain served is leaf, intermediate, root.
    chain = issued.istio_cert_chain()
    assert chain == [issued.cert_pem, cert_pem(intermediate), cert_pem(root)]
    # OpenSSL verifies through the intermediate, and not without it.
    assert_openssl_accepts(tmp_path, issued.cert, [root], intermediates=[intermediate])
    assert openssl_verify(tmp_path, issued.cert, [root]).returncode != 0


def test_plugged_in_cacerts_without_cert_chain_file(tmp_path: Path, istio_cacerts) -> None:
    folder, root, intermediate = istio_cacerts
    (folder / CERT_CHAIN).unlink()
    authority = load_ca_folder(folder, "cluster.local")
    assert authority.signer.intermediates == (intermediate,)
    assert authority.signer.root == root


def test_two_level_intermediates(tmp_path: Path) -> None:
    root_key = generate_key()
    root = build_root(root_key, trust_domain="cluster.local", now=NOW)
    regional_key = generate_key()
    regional = build_intermediate(
        regional_key,
        issuer_cert=root,
        issuer_key=root_key,
        trust_domain="cluster.local",
        now=NOW,
        common_name="regional",
        path_length=1,
    )
    cluster_key = generate_key()
    cluster = build_intermediate(
        cluster_key,
        issuer_cert=regional,
        issuer_key=regional_key,
        trust_domain="cluster.local",
        now=NOW,
        common_name="cluster",
    )
    folder = tmp_path / "cacerts"
    folder.mkdir()
    _write(folder / CA_KEY, private_key_pem(cluster_key), 0o600)
    _write(folder / CA_CERT, cert_pem(cluster))
    _write(folder / CERT_CHAIN, cert_pem(cluster) + cert_pem(regional) + cert_pem(root))
    _write(folder / ROOT_CERT, cert_pem(root))
    authority = load_ca_folder(folder, "cluster.local")
    assert authority.signer.intermediates == (cluster, regional)
    issued = authority.issue_workload("default", "reviews")
    assert issued.istio_cert_chain() == [
        issued.cert_pem,
        cert_pem(cluster),
        cert_pem(regional),
        cert_pem(root),
    ]
    assert_openssl_accepts(tmp_path, issued.cert, [root], intermediates=[cluster, regional])


def test_key_that_does_not_match_the_certificate_is_refused(istio_cacerts) -> None:
    folder, _, _ = istio_cacerts
    (folder / CA_KEY).unlink()
    _write(folder / CA_KEY, private_key_pem(generate_key()), 0o600)
    with pytest.raises(CAError, match="does not match"):
        load_ca_folder(folder, "cluster.local")


def test_intermediate_that_does_not_chain_to_the_root_is_refused(istio_cacerts) -> None:
    folder, _, _ = istio_cacerts
    other_root = build_root(generate_key(), trust_domain="cluster.local", now=NOW)
    _write(folder / ROOT_CERT, cert_pem(other_root))
    with pytest.raises(CAError, match="does not chain"):
        load_ca_folder(folder, "cluster.local")


def test_garbage_key_file_error_holds_no_key_bytes(istio_cacerts) -> None:
    folder, _, _ = istio_cacerts
    garbage = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n"
    (folder / CA_KEY).unlink()
    _write(folder / CA_KEY, garbage, 0o600)
    with pytest.raises(CAError) as failure:
        load_ca_folder(folder, "cluster.local")
    assert "c2VjcmV0" not in str(failure.value)
