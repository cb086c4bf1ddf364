"""The Istio certificate service (CSR over gRPC), counted as istiod counts it:
``citadel_server_csr_count``, ``citadel_server_success_cert_issuance_count``,
``citadel_server_authentication_failure_count`` and ``citadel_server_csr_parsing_err_count``;
plus ``citadel_server_csr_rate_limited_count{limit="peer"|"identity"}``, which istiod lacks."""

from __future__ import annotations

from typing import Any

import grpc

from controlplane._proto.istio.security.v1alpha1 import ca_pb2
from controlplane.auth.ca_service import CertificateService, Refusal
from controlplane.server.metrics import Metrics

# istiod counts a refused or invalid credential, and a CSR for another identity.
_AUTH_FAILURES = (Refusal.NO_CREDENTIAL, Refusal.UNAUTHENTICATED, Refusal.PERMISSION_DENIED)
_RATE_LIMITS = {Refusal.PEER_RATE_LIMITED: "peer", Refusal.IDENTITY_RATE_LIMITED: "identity"}


class MeteredCertificateService(CertificateService):
    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics

    async def CreateCertificate(
        self, request: ca_pb2.IstioCertificateRequest, context: grpc.aio.ServicerContext
    ) -> ca_pb2.IstioCertificateResponse:
        self._metrics.csr_count.inc()
        response = await super().CreateCertificate(request, context)
        self._metrics.certs_issued.inc()
        return response

    def refused(self, reason: Refusal) -> None:
        # Counted before the status leaves: a client that reads /metrics right after its
        # failed call sees it counted.
        if reason in _AUTH_FAILURES:
            self._metrics.csr_auth_failures.inc()
        elif reason is Refusal.INVALID_CSR:
            self._metrics.csr_parsing_errors.inc()
        elif reason in _RATE_LIMITS:
            self._metrics.csr_rate_limited.labels(_RATE_LIMITS[reason]).inc()
