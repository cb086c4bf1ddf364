"""Keep the injection webhook's ``caBundle`` equal to the CA root, while this replica leads
(istiod's webhook patcher, ``pkg/webhooks/webhookpatch.go``).

The API server calls the webhook over TLS with a certificate from the control plane's CA, so
it must trust that root; the manifest ships without a caBundle (the root is only known once
the CA Secret exists) and a rotated root must reach it too. Every webhook of the
MutatingWebhookConfiguration whose name ends with ``sidecar-injector.istio.io`` gets the
trust bundle (base64 of the PEM); the others are left alone, as Istio does. The object is
read and written as raw JSON, so fields this client's models do not know are kept, and the
PUT carries the resourceVersion read: a concurrent edit is a 409, tried again next round.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s

from controlplane.cluster.worker import DEFAULT_RESYNC_SECONDS, LeaderWorker

log = logging.getLogger(__name__)

INJECTOR_CONFIGURATION = "istio-sidecar-injector"  # deploy/kubernetes/webhook.yaml
INJECTOR_WEBHOOK_SUFFIX = "sidecar-injector.istio.io"


def ca_bundle_of(root_pem: str) -> str:
    """A webhook's ``clientConfig.caBundle``: the PEM bundle, base64-encoded."""
    return base64.b64encode(root_pem.encode()).decode()


def with_ca_bundle(configuration: dict[str, Any], ca_bundle: str) -> bool:
    """Set ``ca_bundle`` on the injector's webhooks of ``configuration``; whether any changed."""
    changed = False
    for webhook in configuration.get("webhooks") or ():
        if not str(webhook.get("name", "")).endswith(INJECTOR_WEBHOOK_SUFFIX):
            continue
        client_config = webhook.setdefault("clientConfig", {})
        if client_config.get("caBundle") != ca_bundle:
            client_config["caBundle"] = ca_bundle
            changed = True
    return changed


class WebhookCaBundlePatcher(LeaderWorker):
    thread_name = "webhook-ca-bundle"

    def __init__(
        self,
        api_client: k8s.ApiClient,
        root_pem: Callable[[], str],
        is_leader: Callable[[], bool],
        *,
        configuration: str = INJECTOR_CONFIGURATION,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
    ) -> None:
        super().__init__(is_leader, resync_seconds=resync_seconds)
        self._api = k8s.AdmissionregistrationV1Api(api_client)
        self._root_pem = root_pem
        self.configuration = configuration
        self._missing_logged = False

    def forget(self) -> None:
        pass  # every round reads the configuration back: nothing is remembered

    def run_round(self, *, full: bool) -> None:
        try:
            self.patch()
        except k8s.ApiException as exc:
            if exc.status == 404:  # not installed (yet): looked for again at the next round
                if not self._missing_logged:
                    log.info("MutatingWebhookConfiguration %s not found; its caBundle is set "
                             "once it exists", self.configuration)
                    self._missing_logged = True
            elif exc.status != 409:  # 409: edited meanwhile, next round
                log.warning("caBundle of MutatingWebhookConfiguration %s: HTTP %s; retried "
                            "later", self.configuration, exc.status)
        except Exception as exc:  # noqa: BLE001 (API unreachable: next round)
            log.warning("caBundle of MutatingWebhookConfiguration %s: %s; retried later",
                        self.configuration, type(exc).__name__)

    def patch(self) -> bool:
        """One round: write the root into the configuration if it is not there; whether it
        was written."""
        # Raw JSON (the HTTP response, not a model): every field of the object is written back.
        response: Any = self._api.read_mutating_webhook_configuration(
            self.configuration, _preload_content=False
        )
        try:
            current = json.loads(response.data)
        finally:
            response.release_conn()
        self._missing_logged = False
        if not with_ca_bundle(current, ca_bundle_of(self._root_pem())) or self.interrupted():
            return False
        self._api.replace_mutating_webhook_configuration(self.configuration, current)
        self.writes += 1
        log.info("caBundle of MutatingWebhookConfiguration %s set to the CA root",
                 self.configuration)
        return True
