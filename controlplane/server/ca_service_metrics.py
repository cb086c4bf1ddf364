"""The Istio certificate service (CSR over gRPC), counted as istiod counts it:
``citadel_server_csr_count``, ``citadel_server_success_cert_issuance_count`` and
``citadel_server_authentication_failure_count``."""

from __future__ import annotations

from typing import Any

import grpc

from controlplane._proto.istio.security.v1alpha1 import ca_pb2
from controlplane.auth.ca_service import CertificateService
from controlplane.server.metrics import Metrics

_AUTH_FAILURES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


class _CountingContext:
    """The servicer context, counting an authentication failure before the status leaves:
    a client that reads /metrics right after its failed call sees it counted."""

    def __init__(self, context: grpc.aio.ServicerContext, metrics: Metrics) -> None:
        self._context = context
        self._metrics = metrics

    async def abort(
        self, code: grpc.StatusCode, details: str = "", *args: Any, **kwargs: Any
    ) -> None:
        if code in _AUTH_FAILURES:
            self._metrics.csr_auth_failures.inc()
        await self._context.abort(code, details, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class MeteredCertificateService(CertificateService):
    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics

    async def CreateCertificate(
        self, request: ca_pb2.IstioCertificateRequest, context: grpc.aio.ServicerContext
    ) -> ca_pb2.IstioCertificateResponse:
        self._metrics.csr_count.inc()
        response = await super().CreateCertificate(
            request, _CountingContext(context, self._metrics)
        )  # type: ignore[arg-type]
        self._metrics.certs_issued.inc()
        return response
