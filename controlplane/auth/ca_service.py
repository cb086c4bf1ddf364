"""Istio's certificate signing service, ``istio.v1.auth.IstioCertificateService``.

Istio agents (and anything else speaking that API) send a CSR with a bearer token; the
certificate is issued only for the identity the token proves.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import grpc

from controlplane._proto.istio.security.v1alpha1 import ca_pb2, ca_pb2_grpc
from controlplane.auth.authenticator import Authenticator, bearer_token
from controlplane.auth.errors import AuthError, Unauthenticated
from controlplane.auth.identity import ProvenIdentity
from controlplane.auth.rate_limit import KeyedRateLimiter, peer_key
from controlplane.auth.refusals import RefusalSummary
from controlplane.ca import CAError, CertificateAuthority, parse_csr

log = logging.getLogger(__name__)

SERVICE_NAME = "istio.v1.auth.IstioCertificateService"
# An RSA-4096 CSR is under 2 KiB of PEM; anything much larger is not from an agent.
MAX_CSR_BYTES = 64 * 1024
# Longer requests are cut to the CA's workload lifetime; beyond this they are nonsense
# (and 2**62 s overflows a timedelta).
MAX_VALIDITY_SECONDS = 100 * 365 * 86400


class Refusal(enum.StrEnum):
    """Why a request was refused: the key of the aggregated log line and of the metrics."""

    NO_CREDENTIAL = "no_credential"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    AUTHENTICATION_UNAVAILABLE = "authentication_unavailable"
    PEER_RATE_LIMITED = "peer_rate_limited"
    IDENTITY_RATE_LIMITED = "identity_rate_limited"
    INVALID_REQUEST = "invalid_request"
    INVALID_CSR = "invalid_csr"


@dataclass
class CsrLimits:
    """Certificate requests per peer address (checked before the credential, so floods of
    bad tokens cost little) and per proven identity (bounding what one credential gets)."""

    per_peer: KeyedRateLimiter
    per_identity: KeyedRateLimiter

    @staticmethod
    def of(
        *,
        identity_rate: float,
        identity_burst: float,
        peer_rate: float,
        peer_burst: float,
        max_tracked: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> CsrLimits:
        return CsrLimits(
            KeyedRateLimiter(peer_rate, peer_burst, max_tracked, clock),
            KeyedRateLimiter(identity_rate, identity_burst, max_tracked, clock),
        )


class CertificateService(ca_pb2_grpc.IstioCertificateServiceServicer):
    """``authority`` (and ``authenticator``) may be functions returning the current one, so a
    root rotation (or the Kubernetes verifier added at start) applies to the next request
    without rebuilding the server. ``limits`` None: no rate limits (tests, tools)."""

    def __init__(
        self,
        authority: CertificateAuthority | Callable[[], CertificateAuthority],
        authenticator: Authenticator | Callable[[], Authenticator],
        *,
        limits: CsrLimits | None = None,
        refusals: RefusalSummary | None = None,
    ) -> None:
        if isinstance(authority, CertificateAuthority):
            fixed = authority
            authority = lambda: fixed
        if isinstance(authenticator, Authenticator):
            fixed_authenticator = authenticator
            authenticator = lambda: fixed_authenticator
        self._authority = authority
        self._authenticator = authenticator
        self._limits = limits
        self.refusals = refusals or RefusalSummary(log, "certificate requests")

    async def CreateCertificate(
        self, request: ca_pb2.IstioCertificateRequest, context: grpc.aio.ServicerContext
    ) -> ca_pb2.IstioCertificateResponse:
        peer = peer_key(context.peer() or "")
        identity = await self._authenticate(context, peer)
        ttl = await self._validity(request, context, peer)
        if len(request.csr) > MAX_CSR_BYTES:
            await self._refuse(
                context, Refusal.INVALID_CSR, peer, grpc.StatusCode.INVALID_ARGUMENT,
                f"the CSR is {len(request.csr)} bytes; at most {MAX_CSR_BYTES} are accepted",
            )
        try:
            csr = parse_csr(request.csr)
        except CAError as exc:
            await self._refuse(
                context, Refusal.INVALID_CSR, peer, grpc.StatusCode.INVALID_ARGUMENT, str(exc)
            )
        if csr.spiffe_id != identity.spiffe_id or csr.dns_names or csr.ip_addresses:
            await self._refuse(
                context, Refusal.PERMISSION_DENIED, f"{peer} as {identity.spiffe_id}",
                grpc.StatusCode.PERMISSION_DENIED,
                f"the credential proves {identity.spiffe_id}; the CSR asks for other names",
            )
        try:
            issued = self._authority().issue_for_public_key(csr.public_key, csr.spiffe_id, ttl=ttl)
        except CAError as exc:
            log.error("could not sign a certificate for %s: %s", csr.spiffe_id, exc)
            await context.abort(grpc.StatusCode.INTERNAL, "the CA could not sign the certificate")
        log.debug(
            "issued certificate serial %x for %s, valid until %s",
            issued.cert.serial_number,
            csr.spiffe_id,
            issued.cert.not_valid_after_utc.isoformat(),
        )
        return ca_pb2.IstioCertificateResponse(cert_chain=issued.istio_cert_chain())

    def refused(self, reason: Refusal) -> None:
        """Called before each refusal leaves (MeteredCertificateService counts it)."""

    async def _authenticate(
        self, context: grpc.aio.ServicerContext, peer: str
    ) -> ProvenIdentity:
        # Cheapest first: no credential at all, then the peer's budget, and only then the
        # signature check or TokenReview call; the identity's budget once it is known.
        try:
            token = bearer_token(context.invocation_metadata() or ())
        except Unauthenticated as exc:
            await self._refuse(
                context, Refusal.NO_CREDENTIAL, peer, grpc.StatusCode.UNAUTHENTICATED, str(exc)
            )
        if self._limits is not None and not self._limits.per_peer.allow(peer):
            await self._refuse(
                context, Refusal.PEER_RATE_LIMITED, peer, grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too many certificate requests from this address; retry later",
            )
        try:
            identity = await self._authenticator().authenticate_token(token)
        except AuthError as exc:
            reason = {
                "UNAVAILABLE": Refusal.AUTHENTICATION_UNAVAILABLE,
                "PERMISSION_DENIED": Refusal.PERMISSION_DENIED,
            }.get(exc.grpc_code, Refusal.UNAUTHENTICATED)
            await self._refuse(
                context, reason, peer, getattr(grpc.StatusCode, exc.grpc_code), str(exc)
            )
        if self._limits is not None and not self._limits.per_identity.allow(identity):
            await self._refuse(
                context, Refusal.IDENTITY_RATE_LIMITED, f"{peer} as {identity.spiffe_id}",
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many certificate requests for {identity.spiffe_id}; retry later",
            )
        return identity

    async def _validity(
        self, request: ca_pb2.IstioCertificateRequest, context: grpc.aio.ServicerContext, peer: str
    ) -> timedelta | None:
        seconds = request.validity_duration
        if not 0 <= seconds <= MAX_VALIDITY_SECONDS:
            await self._refuse(
                context, Refusal.INVALID_REQUEST, peer, grpc.StatusCode.INVALID_ARGUMENT,
                f"validity_duration must be 0 (the CA's default) to {MAX_VALIDITY_SECONDS} "
                f"seconds; got {seconds}",
            )
        return timedelta(seconds=seconds) if seconds else None

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext,
        reason: Refusal,
        source: str,
        code: grpc.StatusCode,
        details: str,
    ) -> NoReturn:
        self.refused(reason)
        self.refusals.refused(reason, source)
        await context.abort(code, details)
        raise AssertionError("context.abort returned")  # it raises; this tells type checkers


def add_certificate_service(server: grpc.aio.Server, service: CertificateService) -> None:
    """Register on a ``grpc.aio`` server (the xDS TLS server on 15012, as istiod does)."""
    ca_pb2_grpc.add_IstioCertificateServiceServicer_to_server(service, server)
