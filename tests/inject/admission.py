"""The API server's side of the webhook for tests: pods built with the official kubernetes
models, sent through ``controlplane.pods.admission`` with the webhook configuration's
failurePolicy."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from controlplane.pods.admission import Refused, call
from controlplane.pods.admission import admit as _admit

API = client.ApiClient()

__all__ = ["FAIL", "IGNORE", "Refused", "admit", "call", "pod"]

# The webhook configuration as the API server holds it, with either failurePolicy.
IGNORE = client.V1MutatingWebhook(name="sidecar-injector.istio.io", failure_policy="Ignore",
                                  admission_review_versions=["v1"], side_effects="None",
                                  client_config=client.AdmissionregistrationV1WebhookClientConfig())
FAIL = client.V1MutatingWebhook(name="sidecar-injector.istio.io", failure_policy="Fail",
                                admission_review_versions=["v1"], side_effects="None",
                                client_config=client.AdmissionregistrationV1WebhookClientConfig())


def pod(name: str = "reviews-v1-abc", *, annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None, host_network: bool = False) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name, namespace="mesh", labels={"app": "reviews", "version": "v1", "pod-template-hash": "7d9f", **(labels or {})},
            annotations=annotations,
            owner_references=[client.V1OwnerReference(
                api_version="apps/v1", kind="ReplicaSet", name="reviews-v1-7d9f", uid="u1", controller=True)],
        ),
        spec=client.V1PodSpec(
            host_network=host_network or None,
            service_account_name="bookinfo-reviews",
            containers=[client.V1Container(name="reviews", image="reviews:v1",
                                           ports=[client.V1ContainerPort(container_port=9080, name="http")])],
        ),
    )


def admit(
    url: str, pod: client.V1Pod, namespace: str, root_pem: str, webhook: client.V1MutatingWebhook
) -> dict[str, Any]:
    return _admit(url, API.sanitize_for_serialization(pod), namespace, root_pem,
                  failure_policy=webhook.failure_policy, webhook_name=webhook.name)
