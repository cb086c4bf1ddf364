"""Authentication outcomes that are not an identity. Plain exceptions, no gRPC import:
the gRPC layers map them to UNAUTHENTICATED, PERMISSION_DENIED and UNAVAILABLE."""

from __future__ import annotations


class AuthError(Exception):
    """Base class; ``grpc_code`` names the gRPC status the caller should answer with."""

    grpc_code = "UNAUTHENTICATED"


class Unauthenticated(AuthError):
    """No credential, or one that does not verify (expired, forged, wrong audience...)."""

    grpc_code = "UNAUTHENTICATED"


class PermissionDenied(AuthError):
    """A valid credential, but the proxy claims (or asks for) another identity."""

    grpc_code = "PERMISSION_DENIED"


class AuthenticationUnavailable(AuthError):
    """The credential could not be checked right now (e.g. the TokenReview API is down)."""

    grpc_code = "UNAVAILABLE"
