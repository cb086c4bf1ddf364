"""Local proxy credentials: JWTs minted and verified by the control plane (PyJWT, ES256).

The signing key is ``token-key.pem`` in the CA folder, separate from the CA key. A token
carries the workload's namespace and service account in the same claims a Kubernetes
ServiceAccount token does (``sub: system:serviceaccount:<ns>:<sa>`` and
``kubernetes.io.namespace`` / ``kubernetes.io.serviceaccount.name``).
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.auth.errors import Unauthenticated
from controlplane.auth.identity import ProvenIdentity, identity_from_username
from controlplane.ca.errors import CAError
from controlplane.ca.keys import read_private_key_file, write_new_private_key
from controlplane.ca.spiffe import SpiffeId

TOKEN_KEY_FILE = "token-key.pem"
DEFAULT_ISSUER = "controlplane"
DEFAULT_AUDIENCE = "istio-ca"  # the audience Istio's agents ask for
# Envoy's bootstrap carries the token and cannot refresh it, so local tokens live long.
DEFAULT_TOKEN_TTL = timedelta(days=30)
ALGORITHM = "ES256"
CLOCK_SKEW_LEEWAY = timedelta(seconds=30)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def load_or_create_token_key(
    ca_folder: Path, *, strict_permissions: bool = False
) -> ec.EllipticCurvePrivateKey:
    """The token signing key, created (mode 0600) on first use and never overwritten."""
    path = ca_folder / TOKEN_KEY_FILE
    if not path.exists():
        ca_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_new_private_key(path, ec.generate_private_key(ec.SECP256R1()))
    key = read_private_key_file(path, strict_permissions=strict_permissions)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CAError(f"{path} must hold an ECDSA P-256 key for ES256")
    return key


def rotate_token_key(ca_folder: Path) -> ec.EllipticCurvePrivateKey:
    """Replace the token signing key: every token signed with the old one stops verifying
    (a running server re-reads the key file when it changes)."""
    path = ca_folder / TOKEN_KEY_FILE
    if not path.exists():
        raise CAError(f"{path} is missing; nothing to rotate")
    key = ec.generate_private_key(ec.SECP256R1())
    staged = path.with_name(f".{TOKEN_KEY_FILE}.{secrets.token_hex(4)}")
    write_new_private_key(staged, key)  # 0600 from the start
    os.replace(staged, path)  # atomic: a reader sees the old key or the new, never half
    return key


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


@dataclass(frozen=True)
class TokenIssuer:
    """Mints local tokens (``controlplane ca token``, bootstrap generation)."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    clock: Callable[[], datetime] = field(default=_utc_now, compare=False, repr=False)

    def mint(
        self, namespace: str, service_account: str, *, ttl: timedelta = DEFAULT_TOKEN_TTL
    ) -> str:
        SpiffeId.for_workload("x", namespace, service_account)  # same name rules as the SVID
        now = self.clock()
        claims = {
            "iss": self.issuer,
            "aud": [self.audience],
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "jti": secrets.token_hex(16),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account}},
        }
        return jwt.encode(
            claims, self.key, algorithm=ALGORITHM, headers={"kid": key_id(self.key.public_key())}
        )

    def verifier(self, trust_domain: str) -> LocalTokenVerifier:
        return LocalTokenVerifier(
            self.key.public_key(),
            trust_domain,
            issuer=self.issuer,
            audience=self.audience,
            clock=self.clock,
        )


@dataclass(frozen=True)
class LocalTokenVerifier:
    """Checks tokens from ``TokenIssuer``; tokens of other issuers are not its business."""

    public_key: ec.EllipticCurvePublicKey
    trust_domain: str
    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    clock: Callable[[], datetime] = field(default=_utc_now, compare=False, repr=False)
    revoked: Collection[str] = field(default=frozenset(), compare=False, repr=False)  # jti values

    def claims_issuer(self, token: str) -> bool:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return False
        return unverified.get("iss") == self.issuer

    async def verify(self, token: str) -> ProvenIdentity | None:
        if not self.claims_issuer(token):
            return None
        try:
            claims = self._decode_at(token, self.clock())
        except jwt.InvalidTokenError as exc:
            # PyJWT's messages name the check that failed, never the token's content.
            raise Unauthenticated(f"invalid token ({type(exc).__name__}): {exc}") from None
        if claims["jti"] in self.revoked:
            raise Unauthenticated("token revoked")
        return self._identity(claims)

    def _decode_at(self, token: str, now: datetime) -> dict:
        # Only ES256: 'none', HS256-keyed-with-the-public-key and the like are refused.
        # Expiry is checked here against the injected clock rather than PyJWT's own.
        claims = jwt.decode(
            token,
            self.public_key,
            algorithms=[ALGORITHM],
            audience=self.audience,
            issuer=self.issuer,
            options={
                # jti: every token this issuer mints has one, so every one can be revoked.
                "require": ["exp", "iat", "iss", "aud", "sub", "jti"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
        for name in ("exp", "nbf", "iat"):
            if name in claims and not _is_number(claims[name]):
                raise jwt.InvalidTokenError(f"claim {name!r} is not a number")
        if not isinstance(claims["jti"], str) or not claims["jti"]:
            raise jwt.InvalidTokenError("claim 'jti' is not a string")
        leeway = CLOCK_SKEW_LEEWAY.total_seconds()
        if now.timestamp() >= claims["exp"] + leeway:
            raise jwt.ExpiredSignatureError("token expired")
        if "nbf" in claims and now.timestamp() < claims["nbf"] - leeway:
            raise jwt.ImmatureSignatureError("token not yet valid")
        return claims

    def _identity(self, claims: dict) -> ProvenIdentity:
        identity = identity_from_username(str(claims["sub"]), self.trust_domain)
        if identity is None:
            raise Unauthenticated("token subject is not a service account")
        k8s = claims.get("kubernetes.io")
        k8s = k8s if isinstance(k8s, dict) else {}
        service_account = k8s.get("serviceaccount")
        service_account = service_account if isinstance(service_account, dict) else {}
        if (k8s.get("namespace"), service_account.get("name")) != (
            identity.namespace,
            identity.service_account,
        ):
            raise Unauthenticated("token claims disagree about the service account")
        return identity


def _is_number(value: object) -> bool:
    # JSON gives int or float; bool is an int to Python, NaN would never expire, and an
    # integer of 400 digits cannot be compared with a float timestamp.
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return abs(value) < 1e15 and math.isfinite(value)
