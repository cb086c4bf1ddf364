"""The Authenticator: from gRPC metadata (``authorization: Bearer <token>``) and the node's
claim to the identity the credential proves. Free of xDS and gRPC imports on purpose."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from controlplane.auth.errors import Unauthenticated
from controlplane.auth.identity import ClaimedIdentity, ProvenIdentity

Metadata = Iterable[tuple[str, str | bytes]]


class CredentialVerifier(Protocol):
    async def verify(self, token: str) -> ProvenIdentity | None:
        """The identity the token proves; None when the token is not of this kind;
        raise Unauthenticated when it is of this kind and does not verify."""


def bearer_token(metadata: Metadata) -> str:
    values = [v for k, v in metadata if k.lower() == "authorization"]
    if not values:
        raise Unauthenticated("no authorization metadata")
    if len(values) > 1:
        raise Unauthenticated("more than one authorization header")
    value = values[0].decode("ascii", "replace") if isinstance(values[0], bytes) else values[0]
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization is not 'Bearer <token>'")
    return token.strip()


@dataclass(frozen=True)
class Authenticator:
    """Tries each verifier in turn (local tokens first, then Kubernetes TokenReview)."""

    verifiers: Sequence[CredentialVerifier]

    async def authenticate_token(self, token: str) -> ProvenIdentity:
        for verifier in self.verifiers:
            identity = await verifier.verify(token)
            if identity is not None:
                return identity
        raise Unauthenticated("no verifier accepts this credential")

    async def authenticate(
        self, metadata: Metadata, claim: ClaimedIdentity | None = None
    ) -> ProvenIdentity:
        """The proven identity; PermissionDenied if ``claim`` names another one."""
        identity = await self.authenticate_token(bearer_token(metadata))
        if claim is not None:
            claim.check_against(identity)
        return identity
