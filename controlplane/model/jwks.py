"""JWKS documents the control plane fetched for RequestAuthentication ``jwtRules``.

Istio's istiod fetches each ``jwksUri`` (or, with neither ``jwks`` nor ``jwksUri``, the
issuer's OpenID discovery document and the ``jwks_uri`` it names) and inlines the keys into
the Envoy config, so sidecars need no route to the issuer. Here the fetcher
(``sources.jwks``) feeds what it fetched into the store as ``FetchedJwks`` resources, and
translation reads them from the index: a key rotation is an input change like any other.

``FetchedJwks`` is an internal kind: the fetcher is its only source, and YAML cannot name it
(it is not in the model registry).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import ClassVar

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.security import JWTRule

OPENID_DISCOVERY_SUFFIX = "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True, order=True)
class JwksTarget:
    """Where a rule's keys are fetched from: its ``jwksUri``, or, when it names none, the
    OpenID discovery of its ``issuer`` (then ``issuer`` is set and ``jwks_uri`` empty)."""

    jwks_uri: str = ""
    issuer: str = ""

    @property
    def discovery_url(self) -> str:
        """The OpenID discovery document to read the ``jwks_uri`` from ("" with a jwksUri)."""
        if self.jwks_uri:
            return ""
        return self.issuer.rstrip("/") + OPENID_DISCOVERY_SUFFIX

    def __str__(self) -> str:
        return self.jwks_uri or f"OpenID discovery of {self.issuer}"


def jwks_target(rule: JWTRule) -> JwksTarget | None:
    """What must be fetched for ``rule``; None when its ``jwks`` is inline (inline keys win
    over ``jwksUri``, as in Istio)."""
    if rule.jwks:
        return None
    if rule.jwks_uri:
        return JwksTarget(jwks_uri=rule.jwks_uri)
    return JwksTarget(issuer=rule.issuer)


def fetched_jwks_name(target: JwksTarget) -> str:
    """A stable resource name for ``target`` (URIs are not valid names)."""
    digest = hashlib.sha256(f"{target.jwks_uri}\n{target.issuer}".encode()).hexdigest()
    return f"jwks-{digest[:24]}"


def jwks_problem(text: str) -> str:
    """Why ``text`` is not a JWKS Envoy can use ("" when it is): a JSON object whose ``keys``
    list holds objects naming their ``kty``."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        return f"jwks parse error: {exc}"
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) and "kty" in k for k in keys):
        return "jwks parse error: expected an object with a list of keys, each with a kty"
    return ""


@dataclass(frozen=True, slots=True)
class FetchedJwksSpec:
    target: JwksTarget
    jwks: str  # the document as served (already checked with jwks_problem)


@dataclass(frozen=True, slots=True)
class FetchedJwks(Resource):
    KIND: ClassVar[str] = "FetchedJwks"
    meta: ObjectMeta
    spec: FetchedJwksSpec

    @staticmethod
    def of(target: JwksTarget, jwks: str) -> FetchedJwks:
        return FetchedJwks(ObjectMeta(name=fetched_jwks_name(target)), FetchedJwksSpec(target, jwks))
