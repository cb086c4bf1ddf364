"""What ``controlplane serve --kubernetes`` does with the cluster's CA material: the CA's own
Secrets (its key) never enter the input store, whatever the API sends, and the leader sets the
injector webhook's caBundle to the root it signs with."""

from __future__ import annotations

import base64
import json
from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks.replicas import start_replica
from controlplane.ca import load_ca_folder
from tests.harness.control_plane import ServedControlPlane
from tests.harness.wait import wait_for
from tests.replicas.cluster import (
    MUTATING_WEBHOOKS,
    SECRETS,
    cluster_double,
    shipped_webhook_configuration,
)

pytestmark = pytest.mark.slow


def secret(namespace: str, name: str, kind: str = "kubernetes.io/tls") -> dict:
    data = {"tls.crt": base64.b64encode(b"cert").decode(),
            "tls.key": base64.b64encode(b"key").decode()}
    return {"metadata": {"name": name, "namespace": namespace}, "type": kind, "data": data}


def stored_secrets(replica: ServedControlPlane) -> set[str]:
    status, body = replica.get("/debug/configz")
    assert status == 200, body
    return {key for key in json.loads(body)["resources"] if key.startswith("Secret ")}


def test_ca_secrets_stay_out_of_the_store_and_the_webhook_trusts_the_root(tmp_path: Path) -> None:
    with cluster_double() as kube, ExitStack() as stack:
        kube.upsert(SECRETS, secret("default", "ingress-cert"))
        kube.upsert(SECRETS, secret("default", "other-root", "istio.io/ca-root"))
        kube.upsert(MUTATING_WEBHOOKS, shipped_webhook_configuration())
        replica = start_replica(stack, tmp_path, kube, 0)
        # Listed at start: istio-ca-secret (the replica created it) and any istio.io/ca-root.
        assert kube.get(SECRETS, "istio-system", "istio-ca-secret") is not None
        wait_for(lambda: stored_secrets(replica) == {"Secret default/ingress-cert"},
                 message="only the ingress certificate stored")
        # Watched later: cacerts in the system namespace (Opaque, as users create it) is
        # skipped; the same name elsewhere is an ordinary Secret; a Secret that becomes a CA
        # root leaves the store.
        kube.upsert(SECRETS, secret("istio-system", "cacerts", "Opaque"))
        kube.upsert(SECRETS, secret("default", "cacerts", "Opaque"))
        kube.upsert(SECRETS, secret("default", "ingress-cert", "istio.io/ca-root"))
        kube.upsert(SECRETS, secret("default", "last"))
        wait_for(lambda: "Secret default/last" in stored_secrets(replica), message="watched")
        assert stored_secrets(replica) == {"Secret default/cacerts", "Secret default/last"}

        root = load_ca_folder(replica.ca_dir, "cluster.local").bundle.pem
        expected = base64.b64encode(root.encode()).decode()

        def ca_bundle() -> str | None:
            found = kube.get(MUTATING_WEBHOOKS, "", "istio-sidecar-injector") or {}
            return found["webhooks"][0]["clientConfig"].get("caBundle")

        wait_for(lambda: ca_bundle() == expected, message="caBundle = the CA root")
