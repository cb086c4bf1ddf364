"""Proxy authentication: local tokens, Kubernetes TokenReview, and the CSR service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controlplane.auth.authenticator import Authenticator, CredentialVerifier, bearer_token
from controlplane.auth.errors import (
    AuthenticationUnavailable,
    AuthError,
    PermissionDenied,
    Unauthenticated,
)
from controlplane.auth.folder_verifier import FolderTokenVerifier
from controlplane.auth.identity import (
    ClaimedIdentity,
    ProvenIdentity,
    claim_from_node,
    identity_from_username,
)
from controlplane.auth.tokens import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    DEFAULT_TOKEN_TTL,
    TOKEN_KEY_FILE,
    LocalTokenVerifier,
    TokenIssuer,
    load_or_create_token_key,
    rotate_token_key,
)


def local_token_issuer(ca_folder: Path) -> TokenIssuer:
    """The issuer of local tokens, its key kept in the CA folder (created on first use)."""
    return TokenIssuer(load_or_create_token_key(ca_folder))


def build_authenticator(
    ca_folder: Path, trust_domain: str, kubernetes_api_client: Any | None = None
) -> Authenticator:
    """Local tokens always (key and revocations re-read from the CA folder when they change);
    Kubernetes ServiceAccount tokens (TokenReview) when a ``kubernetes.client.ApiClient``
    is given."""
    verifiers: list[CredentialVerifier] = [FolderTokenVerifier(ca_folder, trust_domain)]
    if kubernetes_api_client is not None:
        from controlplane.auth.kubernetes_tokens import KubernetesTokenReviewer

        verifiers.append(KubernetesTokenReviewer(kubernetes_api_client, trust_domain))
    return Authenticator(tuple(verifiers))


__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "DEFAULT_TOKEN_TTL",
    "TOKEN_KEY_FILE",
    "AuthError",
    "AuthenticationUnavailable",
    "Authenticator",
    "ClaimedIdentity",
    "CredentialVerifier",
    "LocalTokenVerifier",
    "PermissionDenied",
    "ProvenIdentity",
    "TokenIssuer",
    "Unauthenticated",
    "bearer_token",
    "build_authenticator",
    "claim_from_node",
    "identity_from_username",
    "load_or_create_token_key",
    "local_token_issuer",
    "rotate_token_key",
]
