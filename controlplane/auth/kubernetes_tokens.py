"""Cluster proxy credentials: Kubernetes ServiceAccount tokens checked with TokenReview.

The official ``kubernetes`` client is synchronous, so each review runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from kubernetes import client as k8s

from controlplane.auth.errors import AuthenticationUnavailable, Unauthenticated
from controlplane.auth.identity import ProvenIdentity, identity_from_username
from controlplane.auth.tokens import DEFAULT_AUDIENCE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KubernetesTokenReviewer:
    api_client: k8s.ApiClient = field(repr=False)
    trust_domain: str
    # Istio's agents send tokens minted for audience "istio-ca".
    audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)

    async def verify(self, token: str) -> ProvenIdentity | None:
        status = await asyncio.to_thread(self._review, token)
        if not status.authenticated:
            raise Unauthenticated(
                f"TokenReview rejected the token: {status.error or 'not authenticated'}"
            )
        if self.audiences and not set(status.audiences or ()) & set(self.audiences):
            raise Unauthenticated("the token is not meant for this audience")
        username = status.user.username if status.user else ""
        identity = identity_from_username(username or "", self.trust_domain)
        if identity is None:
            raise Unauthenticated(f"{username!r} is not a service account")
        return identity

    def _review(self, token: str) -> k8s.V1TokenReviewStatus:
        review = k8s.V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=k8s.V1TokenReviewSpec(token=token, audiences=_list(self.audiences)),
        )
        try:
            result = k8s.AuthenticationV1Api(self.api_client).create_token_review(review)
        except k8s.ApiException as exc:
            # The token itself is never logged; the status code is enough to debug.
            log.warning("TokenReview call failed with HTTP %s", exc.status)
            raise AuthenticationUnavailable(f"TokenReview failed (HTTP {exc.status})") from None
        except Exception as exc:  # noqa: BLE001 (connection refused, TLS errors, timeouts)
            raise AuthenticationUnavailable(
                f"TokenReview unreachable: {type(exc).__name__}"
            ) from None
        if result.status is None:
            raise AuthenticationUnavailable("TokenReview returned no status")
        return result.status


def _list(values: Sequence[str]) -> list[str] | None:
    return list(values) or None
