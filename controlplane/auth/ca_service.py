"""Istio's certificate signing service, ``istio.v1.auth.IstioCertificateService``.

Istio agents (and anything else speaking that API) send a CSR with a bearer token; the
certificate is issued only for the identity the token proves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import grpc

from controlplane._proto.istio.security.v1alpha1 import ca_pb2, ca_pb2_grpc
from controlplane.auth.authenticator import Authenticator
from controlplane.auth.errors import AuthError
from controlplane.ca import CAError, CertificateAuthority, parse_csr

log = logging.getLogger(__name__)

SERVICE_NAME = "istio.v1.auth.IstioCertificateService"


class CertificateService(ca_pb2_grpc.IstioCertificateServiceServicer):
    """``authority`` is a function returning the current CA, so a root rotation applies
    to the next request without rebuilding the server."""

    def __init__(
        self,
        authority: CertificateAuthority | Callable[[], CertificateAuthority],
        authenticator: Authenticator,
    ) -> None:
        if isinstance(authority, CertificateAuthority):
            fixed = authority
            authority = lambda: fixed
        self._authority = authority
        self._authenticator = authenticator

    async def CreateCertificate(
        self, request: ca_pb2.IstioCertificateRequest, context: grpc.aio.ServicerContext
    ) -> ca_pb2.IstioCertificateResponse:
        try:
            identity = await self._authenticator.authenticate(context.invocation_metadata() or ())
        except AuthError as exc:
            log.info("certificate request refused: %s", exc)
            await context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))
        try:
            csr = parse_csr(request.csr)
        except CAError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if csr.spiffe_id != identity.spiffe_id or csr.dns_names or csr.ip_addresses:
            log.info("refused CSR for %s from %s", csr.spiffe_id, identity.spiffe_id)
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the credential proves {identity.spiffe_id}; the CSR asks for other names",
            )
        if request.validity_duration < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "negative validity_duration")
        ttl = timedelta(seconds=request.validity_duration) if request.validity_duration else None
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


def add_certificate_service(server: grpc.aio.Server, service: CertificateService) -> None:
    """Register on a ``grpc.aio`` server (the xDS TLS server on 15012, as istiod does)."""
    ca_pb2_grpc.add_IstioCertificateServiceServicer_to_server(service, server)
