"""The API server's side of the webhook for tests: pods built with the official kubernetes
models, sent through ``controlplane.pods.admission`` with the webhook configuration's
failurePolicy."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from controlplane.pods.admission import Refused, call
from controlplane.pods.admission import admit as _admit

API = client.ApiClient()

__all__ = ["Refused", "admit", "call"]


def admit(
    url: str, pod: client.V1Pod, namespace: str, root_pem: str, webhook: client.V1MutatingWebhook
) -> dict[str, Any]:
    return _admit(url, API.sanitize_for_serialization(pod), namespace, root_pem,
                  failure_policy=webhook.failure_policy, webhook_name=webhook.name)
