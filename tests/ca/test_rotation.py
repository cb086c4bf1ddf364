"""Root rotation: the new root is trusted before it signs; both are trusted during overlap."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controlplane.ca import (
    CAError,
    CertificateAuthority,
    activate_staged_root,
    drop_trusted_root,
    fingerprint_sha256,
    load_ca_folder,
    load_or_init_ca,
    new_root_signer,
    stage_new_root,
)
from controlplane.ca.folder import CA_KEY, NEXT_DIR, RETIRED_DIR
from tests.ca.svid_rules import assert_openssl_accepts, openssl_verify


def test_in_memory_rotation(tmp_path: Path) -> None:
    old = CertificateAuthority.self_signed("cluster.local")
    before = old.issue_workload("default", "reviews")
    new_signer = new_root_signer("cluster.local", now=datetime.now(UTC))

    # Signing with a root nobody trusts yet is refused.
    with pytest.raises(CAError, match="before signing"):
        old.with_signer(new_signer)

    # Step 1: trusted next to the old root; still signing with the old one.
    overlap = old.with_trusted_root(new_signer.root)
    assert overlap.bundle.roots == (old.signer.root, new_signer.root)
    during = overlap.issue_workload("default", "reviews")
    assert during.root == old.signer.root
    assert during.istio_cert_chain()[-1] == overlap.bundle.pem  # peers get both roots

    # Step 2: sign with the new root.
    rotated = overlap.with_signer(new_signer)
    after = rotated.issue_workload("default", "reviews")
    assert after.root == new_signer.root

    # With the combined bundle, leaves from both roots verify; with one root, only its own.
    for leaf in (before.cert, during.cert, after.cert):
        assert_openssl_accepts(tmp_path, leaf, rotated.bundle.roots)
    assert openssl_verify(tmp_path, after.cert, [old.signer.root]).returncode != 0
    assert openssl_verify(tmp_path, before.cert, [new_signer.root]).returncode != 0

    # Step 3: drop the old root; the signing root cannot be dropped.
    final = rotated.without_trusted_root(fingerprint_sha256(old.signer.root))
    assert final.bundle.roots == (new_signer.root,)
    with pytest.raises(CAError):
        final.without_trusted_root(fingerprint_sha256(new_signer.root))


def test_a_non_root_cannot_be_added_to_the_bundle(authority: CertificateAuthority) -> None:
    leaf = authority.issue_workload("default", "reviews").cert
    with pytest.raises(CAError):
        authority.with_trusted_root(leaf)


def test_folder_rotation(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    old = load_or_init_ca(folder, "cluster.local")
    old_key = (folder / CA_KEY).read_bytes()
    old_leaf = old.issue_workload("default", "reviews").cert

    new_root = stage_new_root(folder, "cluster.local")
    assert stat.S_IMODE((folder / NEXT_DIR / CA_KEY).stat().st_mode) == 0o600
    staged = load_ca_folder(folder, "cluster.local")
    assert staged.bundle.roots == (old.signer.root, new_root)
    assert staged.signer.root == old.signer.root  # trusted, not signing
    with pytest.raises(CAError, match="already staged"):
        stage_new_root(folder, "cluster.local")

    activate_staged_root(folder)
    rotated = load_ca_folder(folder, "cluster.local")
    assert rotated.signer.root == new_root
    assert rotated.bundle.roots == (old.signer.root, new_root)
    new_leaf = rotated.issue_workload("default", "reviews").cert
    for leaf in (old_leaf, new_leaf):
        assert_openssl_accepts(tmp_path, leaf, rotated.bundle.roots)
    # The old key was moved aside, byte for byte, never rewritten.
    retired = list((folder / RETIRED_DIR).glob(f"*/{CA_KEY}"))
    assert [p.read_bytes() for p in retired] == [old_key]
    assert stat.S_IMODE(retired[0].stat().st_mode) == 0o600

    with pytest.raises(CAError):
        drop_trusted_root(folder, fingerprint_sha256(new_root))
    drop_trusted_root(folder, fingerprint_sha256(old.signer.root))
    assert load_ca_folder(folder, "cluster.local").bundle.roots == (new_root,)


def test_activate_without_stage_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    load_or_init_ca(folder, "cluster.local")
    with pytest.raises(CAError, match="stage one first"):
        activate_staged_root(folder)
