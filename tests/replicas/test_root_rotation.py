"""Root rotation in a cluster: the CA Secret gets a new root; every replica sees it through its
watch of Secrets and signs with it, trusting the old root too during the overlap, and the
leader publishes both (istio-ca-root-cert, the webhook's caBundle)."""

from __future__ import annotations

import base64
from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks.replicas import start_replica
from controlplane.ca import cert_pem, fingerprint_sha256, load_ca_folder, new_root_signer
from controlplane.ca.authority import utc_now
from controlplane.ca.keys import private_key_pem
from tests.harness.wait import wait_for
from tests.replicas.cluster import (
    CONFIGMAPS,
    MUTATING_WEBHOOKS,
    SECRETS,
    cluster_double,
    shipped_webhook_configuration,
)

pytestmark = pytest.mark.slow

TRUST_DOMAIN = "cluster.local"


def published_root(kube, namespace: str = "default") -> str | None:
    found = kube.get(CONFIGMAPS, namespace, "istio-ca-root-cert")
    return found["data"]["root-cert.pem"] if found else None


def ca_bundle(kube) -> str | None:
    found = kube.get(MUTATING_WEBHOOKS, "", "istio-sidecar-injector") or {}
    return found["webhooks"][0]["clientConfig"].get("caBundle")


def test_replicas_follow_a_new_root_in_the_secret_and_keep_trusting_the_old(
    tmp_path: Path,
) -> None:
    with cluster_double() as kube, ExitStack() as stack:
        kube.upsert(MUTATING_WEBHOOKS, shipped_webhook_configuration())
        replicas = [start_replica(stack, tmp_path, kube, i) for i in range(2)]
        before = load_ca_folder(replicas[0].ca_dir, TRUST_DOMAIN)
        issued_before = before.issue_workload("default", "reviews")
        wait_for(lambda: published_root(kube) == before.bundle.pem, message="old root published")

        # An operator (or a rotation job) puts a new root into istio-ca-secret.
        signer = new_root_signer(TRUST_DOMAIN, now=utc_now())
        root = cert_pem(signer.root).encode()
        files = {"ca-cert.pem": root, "ca-key.pem": private_key_pem(signer.key),
                 "cert-chain.pem": root, "root-cert.pem": root}
        secret = kube.get(SECRETS, "istio-system", "istio-ca-secret")
        assert secret is not None
        secret["data"] = {k: base64.b64encode(v).decode() for k, v in files.items()}
        kube.upsert(SECRETS, secret)

        new, old = fingerprint_sha256(signer.root), fingerprint_sha256(before.signer.root)

        def signing_root(index: int) -> str:
            return fingerprint_sha256(load_ca_folder(replicas[index].ca_dir, TRUST_DOMAIN)
                                      .signer.root)

        for index in range(2):
            wait_for(lambda i=index: signing_root(i) == new,  # type: ignore[misc]
                     message=f"replica {index} signs with the new root")
            after = load_ca_folder(replicas[index].ca_dir, TRUST_DOMAIN)
            assert after.bundle.fingerprints == (new, old)  # the overlap: both trusted
            assert after.bundle.contains(issued_before.root)
            issued_before.cert.verify_directly_issued_by(after.bundle.roots[1])
            after.issue_workload("default", "ratings").cert.verify_directly_issued_by(
                signer.root)

        both = load_ca_folder(replicas[0].ca_dir, TRUST_DOMAIN).bundle.pem
        wait_for(lambda: published_root(kube) == both, message="both roots published")
        wait_for(lambda: ca_bundle(kube) == base64.b64encode(both.encode()).decode(),
                 message="the webhook trusts both roots")
        # The key stays out of every replica's input all along.
        assert all("Secret istio-system/istio-ca-secret" not in r.get("/debug/configz")[1]
                   for r in replicas)
