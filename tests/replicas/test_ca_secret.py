"""The CA root in a Secret: created once by whoever gets there first, shared by every replica,
kept across restarts; Istio's plugged-in ``cacerts`` wins when present."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest

from controlplane.ca import (
    CAError,
    build_intermediate,
    cert_pem,
    fingerprint_sha256,
    generate_key,
    load_ca_folder,
    load_certs_pem,
    new_root_signer,
    private_key_pem,
)
from controlplane.ca.authority import utc_now
from controlplane.cluster.ca_secret import CaSecretFollower, sync_ca_secret
from tests.kube_double.server import KubeApiDouble
from tests.replicas.cluster import SECRETS, api_client_for

TRUST_DOMAIN = "cluster.local"


def replica_ca(kube: KubeApiDouble, folder: Path):
    sync_ca_secret(api_client_for(kube), "istio-system", folder, TRUST_DOMAIN)
    return load_ca_folder(folder, TRUST_DOMAIN)


def secret_names(kube: KubeApiDouble) -> list[str]:
    return [s["metadata"]["name"] for s in kube.objects(SECRETS)]


def test_replicas_racing_share_one_root(kube, tmp_path):
    results: dict[int, str] = {}

    def start(index: int) -> None:
        ca = replica_ca(kube, tmp_path / f"replica-{index}")
        results[index] = fingerprint_sha256(ca.signer.root)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 5
    assert len(set(results.values())) == 1  # every replica signs with the winner's root
    assert secret_names(kube) == ["istio-ca-secret"]
    secret = kube.get(SECRETS, "istio-system", "istio-ca-secret")
    assert secret["type"] == "istio.io/ca-root"
    assert {"ca-cert.pem", "ca-key.pem"} <= set(secret["data"])
    assert (tmp_path / "replica-0" / "ca-key.pem").stat().st_mode & 0o777 == 0o600


def test_a_restart_of_every_replica_keeps_the_root(kube, tmp_path):
    before = replica_ca(kube, tmp_path / "before")
    issued = before.issue_workload("default", "reviews")
    # Every replica restarts with a fresh (empty) CA folder, as a new pod's emptyDir.
    after = [replica_ca(kube, tmp_path / f"after-{i}") for i in range(3)]
    for ca in after:
        assert ca.bundle.contains(issued.root)
        issued.cert.verify_directly_issued_by(ca.signer.root)  # raises if it no longer verifies
        fresh = ca.issue_workload("default", "ratings")
        fresh.cert.verify_directly_issued_by(before.signer.root)


def test_a_folder_that_predates_the_secret_keeps_its_root(kube, tmp_path):
    from controlplane.ca import load_or_init_ca

    old = load_or_init_ca(tmp_path / "old", TRUST_DOMAIN)
    assert fingerprint_sha256(replica_ca(kube, tmp_path / "old").signer.root) == \
        fingerprint_sha256(old.signer.root)
    assert fingerprint_sha256(replica_ca(kube, tmp_path / "other").signer.root) == \
        fingerprint_sha256(old.signer.root)


def test_plugged_in_cacerts_wins(kube, tmp_path):
    now = utc_now()
    root = new_root_signer(TRUST_DOMAIN, now=now)
    key = generate_key()
    intermediate = build_intermediate(
        key, issuer_cert=root.root, issuer_key=root.key, trust_domain=TRUST_DOMAIN, now=now
    )
    files = {
        "ca-cert.pem": cert_pem(intermediate).encode(),
        "ca-key.pem": private_key_pem(key),
        "cert-chain.pem": (cert_pem(intermediate) + cert_pem(root.root)).encode(),
        "root-cert.pem": cert_pem(root.root).encode(),
    }
    kube.upsert(SECRETS, {
        "metadata": {"name": "cacerts", "namespace": "istio-system"},
        "data": {k: base64.b64encode(v).decode() for k, v in files.items()},
    })  # fmt: skip
    ca = replica_ca(kube, tmp_path / "ca")
    assert ca.signer.cert == intermediate
    assert ca.signer.root == root.root
    assert "istio-ca-secret" not in secret_names(kube)  # nothing self-signed was made


def test_a_broken_secret_is_named_with_its_field(kube, tmp_path):
    kube.upsert(SECRETS, {
        "metadata": {"name": "istio-ca-secret", "namespace": "istio-system"},
        "data": {"ca-cert.pem": base64.b64encode(b"not a certificate").decode()},
    })  # fmt: skip
    with pytest.raises(CAError, match=r"Secret istio-system/istio-ca-secret: data.ca-key.pem"):
        replica_ca(kube, tmp_path / "ca")


def test_an_unreachable_api_is_a_clear_error(kube, tmp_path):
    kube.go_away("refuse")
    try:
        with pytest.raises(CAError, match=r"reading Secret istio-system/cacerts failed"):
            replica_ca(kube, tmp_path / "ca")
    finally:
        kube.come_back()


def test_the_follower_claims_ca_secrets_and_ignores_a_broken_change(kube, tmp_path):
    folder = tmp_path / "ca"
    following = sync_ca_secret(api_client_for(kube), "istio-system", folder, TRUST_DOMAIN)
    changes: list[int] = []
    follower = CaSecretFollower("istio-system", following, folder, lambda: changes.append(1))
    tls = {"metadata": {"namespace": "istio-system", "name": "gateway-cert"},
           "type": "kubernetes.io/tls", "data": {}}
    assert not follower.claim(tls)  # input: stored as usual
    assert follower.claim({"metadata": {"namespace": "default", "name": "x"},
                           "type": "istio.io/ca-root", "data": {}})  # a CA Secret: claimed
    unchanged = kube.get(SECRETS, "istio-system", "istio-ca-secret")
    assert follower.claim(unchanged) and changes == []
    key = (folder / "ca-key.pem").read_bytes()
    broken = {**unchanged, "data": {"ca-cert.pem": base64.b64encode(b"garbage").decode()}}
    assert follower.claim(broken)
    assert changes == [] and (folder / "ca-key.pem").read_bytes() == key  # still the old CA
    assert load_ca_folder(folder, TRUST_DOMAIN).signer.root == following_root(following)


def following_root(following):
    return load_certs_pem(following.files["root-cert.pem"])[0]
