"""Local tokens and the Authenticator: what proves an identity, and every way it must not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from controlplane.auth import (
    Authenticator,
    PermissionDenied,
    ProvenIdentity,
    TokenIssuer,
    Unauthenticated,
    bearer_token,
    claim_from_node,
    load_or_create_token_key,
)
from controlplane.auth.tokens import TOKEN_KEY_FILE
from controlplane.translate import NodeParseError, parse_node

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer(ec.generate_private_key(ec.SECP256R1()), clock=lambda: NOW)


@pytest.fixture(scope="module")
def authenticator(issuer: TokenIssuer) -> Authenticator:
    return Authenticator([issuer.verifier("cluster.local")])


def _metadata(token: str) -> list[tuple[str, str]]:
    return [("user-agent", "test"), ("authorization", f"Bearer {token}")]


async def test_token_proves_namespace_and_service_account(issuer, authenticator) -> None:
    token = issuer.mint("default", "reviews")
    identity = await authenticator.authenticate(_metadata(token))
    assert identity == ProvenIdentity("cluster.local", "default", "reviews")
    assert identity.spiffe_id.uri == "spiffe://cluster.local/ns/default/sa/reviews"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:default:reviews"
    assert claims["aud"] == ["istio-ca"] and claims["iss"] == "controlplane"


async def test_matching_node_claim_is_accepted(issuer, authenticator) -> None:
    claim = claim_from_node(
        "sidecar~127.0.10.1~reviews-v1.default~default.svc.cluster.local",
        {"NAMESPACE": "default", "SERVICE_ACCOUNT": "reviews"},
    )
    identity = await authenticator.authenticate(_metadata(issuer.mint("default", "reviews")), claim)
    assert identity.service_account == "reviews"


async def test_no_credential_is_unauthenticated(authenticator) -> None:
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate([("user-agent", "x")])
    for value in ("Basic dXNlcjpwYXNz", "Bearer ", "token"):
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate([("authorization", value)])


async def test_expired_token_is_unauthenticated(issuer, authenticator) -> None:
    old = TokenIssuer(issuer.key, clock=lambda: NOW - timedelta(days=2))
    token = old.mint("default", "reviews", ttl=timedelta(days=1))
    with pytest.raises(Unauthenticated, match="Expired"):
        await authenticator.authenticate(_metadata(token))


async def test_token_not_yet_valid_is_unauthenticated(issuer, authenticator) -> None:
    future = TokenIssuer(issuer.key, clock=lambda: NOW + timedelta(hours=1))
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(_metadata(future.mint("default", "reviews")))


async def test_forged_token_is_unauthenticated(authenticator) -> None:
    forger = TokenIssuer(ec.generate_private_key(ec.SECP256R1()), clock=lambda: NOW)
    with pytest.raises(Unauthenticated, match="InvalidSignature"):
        await authenticator.authenticate(_metadata(forger.mint("default", "reviews")))


async def test_wrong_audience_is_unauthenticated(issuer, authenticator) -> None:
    other = TokenIssuer(issuer.key, audience="some-other-service", clock=lambda: NOW)
    with pytest.raises(Unauthenticated, match="Audience"):
        await authenticator.authenticate(_metadata(other.mint("default", "reviews")))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(namespace: str = "default", service_account: str = "reviews") -> dict:
    return {
        "iss": "controlplane",
        "aud": ["istio-ca"],
        "sub": f"system:serviceaccount:{namespace}:{service_account}",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account}},
    }


async def test_alg_none_is_unauthenticated(authenticator) -> None:
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "NONE"}):
        token = f"{_b64(header)}.{_b64(_claims())}."
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(_metadata(token))


async def test_hs256_keyed_with_the_public_key_is_unauthenticated(issuer, authenticator) -> None:
    # The classic algorithm-confusion attack: HMAC with the verifier's public key as secret.
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(_claims())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(_metadata(token))


async def test_tampered_claims_are_unauthenticated(issuer, authenticator) -> None:
    header, _, signature = issuer.mint("default", "reviews").split(".")
    token = f"{header}.{_b64(_claims('default', 'admin'))}.{signature}"
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(_metadata(token))


async def test_token_for_a_claiming_b_is_permission_denied(issuer, authenticator) -> None:
    token = issuer.mint("default", "service-a")
    node = "sidecar~10.0.0.1~pod.default~default.svc.cluster.local"
    for claim in (
        claim_from_node(node, {"NAMESPACE": "default", "SERVICE_ACCOUNT": "service-b"}),
        claim_from_node("sidecar~10.0.0.1~pod~cluster.local", {"NAMESPACE": "prod"}),
        claim_from_node("sidecar~10.0.0.1~pod.prod~prod.svc.cluster.local", {}),
    ):
        with pytest.raises(PermissionDenied):
            await authenticator.authenticate(_metadata(token), claim)
    # metadata agrees with the credential, the node id does not: refused before any check
    with pytest.raises(PermissionDenied, match="different namespaces"):
        claim_from_node("sidecar~10.0.0.1~pod.prod~prod.svc.cluster.local", {"NAMESPACE": "default"})


def test_claim_from_node_id() -> None:
    claim = claim_from_node(
        "router~10.0.0.1~gw.with.dots.istio-system~istio-system.svc.cluster.local"
    )
    assert claim.namespace == "istio-system" and claim.service_account == ""
    # A node that cannot be read claims nothing a credential could vouch for: refused.
    for unreadable in ("plain-node-id", "sidecar~10.0.0.1~pod~evil.example.com"):
        with pytest.raises(PermissionDenied):
            claim_from_node(unreadable)


def _node(node_id: str, **meta: object) -> base_pb2.Node:
    struct = struct_pb2.Struct()
    struct.update(meta)
    node = base_pb2.Node(id=node_id)
    node.metadata.CopyFrom(struct)
    return node


@pytest.mark.parametrize(
    "node",
    [
        _node("sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local"),
        _node("router~10.0.0.1~gw.with.dots.istio-system~istio-system.svc.cluster.local"),
        _node("sidecar~10.0.0.1~pod~cluster.local", NAMESPACE="prod", SERVICE_ACCOUNT="reviews"),
        _node("sidecar~10.0.0.1~pod.prod~evil.example.com"),
        _node("sidecar~10.0.0.1~pod~evil.example.com"),
        _node("sidecar~10.0.0.1~pod.prod~prod.svc.cluster.local", NAMESPACE="default"),
        _node("sidecar~10.0.0.1~my.pod~default.svc.cluster.local", NAMESPACE="default"),
    ],
)
def test_the_checked_namespace_is_the_translated_namespace(node: base_pb2.Node) -> None:
    """The runtime checks ``claim_from_node`` against the credential and translates for
    ``translate.parse_node``: for every node both read the same namespace, or both refuse it."""
    try:
        proxy = parse_node(node)
    except NodeParseError:
        with pytest.raises(PermissionDenied):
            claim_from_node(node.id, MessageToDict(node.metadata))
        return
    claim = claim_from_node(node.id, MessageToDict(node.metadata))
    assert claim.namespace == proxy.namespace != ""
    assert claim.service_account == proxy.service_account


def test_bearer_token_parsing() -> None:
    assert bearer_token([("authorization", b"Bearer abc")]) == "abc"
    assert bearer_token([("Authorization", "bearer  abc ")]) == "abc"
    with pytest.raises(Unauthenticated):
        bearer_token([("authorization", "Bearer a"), ("authorization", "Bearer b")])


def test_unknown_issuer_is_not_accepted_by_the_local_verifier(issuer) -> None:
    foreign = jwt.encode(
        {**_claims(), "iss": "kubernetes/serviceaccount"}, issuer.key, algorithm="ES256"
    )
    assert not issuer.verifier("cluster.local").claims_issuer(foreign)


async def test_a_foreign_token_without_other_verifier_is_unauthenticated(
    issuer, authenticator
) -> None:
    foreign = jwt.encode({**_claims(), "iss": "somebody-else"}, issuer.key, algorithm="ES256")
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(_metadata(foreign))


def test_token_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_token_key(tmp_path / "certs")
    path = tmp_path / "certs" / TOKEN_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    second = load_or_create_token_key(tmp_path / "certs")
    assert path.read_bytes() == content
    assert first.private_numbers() == second.private_numbers()


async def test_build_authenticator_from_the_ca_folder(tmp_path: Path) -> None:
    from controlplane.auth import build_authenticator, local_token_issuer

    token = local_token_issuer(tmp_path / "certs").mint("default", "reviews")
    authenticator = build_authenticator(tmp_path / "certs", "cluster.local")
    identity = await authenticator.authenticate(_metadata(token))
    assert identity.spiffe_id.uri == "spiffe://cluster.local/ns/default/sa/reviews"


@pytest.mark.parametrize(
    "change",
    [
        {"exp": "tomorrow"},
        {"exp": None},
        {"exp": [1]},
        {"exp": True},
        {"exp": 10**400},
        {"exp": 1e308},
        {"nbf": "now"},
        {"iat": {"a": 1}},
        {"jti": 7},
        {"jti": ""},
        {"jti": None},
        {"kubernetes.io": "default"},
        {"kubernetes.io": {"namespace": "default", "serviceaccount": ["reviews"]}},
        {"sub": 12},
    ],
    ids=repr,
)
async def test_malformed_claims_signed_with_our_key_are_unauthenticated(
    issuer, authenticator, change: dict
) -> None:
    """Only the key holder can sign these; still a clean refusal, never another exception."""
    token = jwt.encode({**_claims(), "jti": "a" * 32, **change}, issuer.key, algorithm="ES256")
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(_metadata(token))


async def test_exp_nan_never_means_forever(issuer, authenticator) -> None:
    payload = json.dumps({**_claims(), "jti": "a" * 32, "exp": float("nan")})  # JSON "NaN"
    token = jwt.api_jws.encode(payload.encode(), issuer.key, algorithm="ES256")
    with pytest.raises(Unauthenticated, match="'exp' is not a number"):
        await authenticator.authenticate(_metadata(token))


async def test_a_token_without_jti_cannot_be_revoked_so_it_is_refused(issuer, authenticator) -> None:
    token = jwt.encode(_claims(), issuer.key, algorithm="ES256")
    with pytest.raises(Unauthenticated, match="jti"):
        await authenticator.authenticate(_metadata(token))


def test_minted_tokens_carry_a_jti(issuer) -> None:
    claims = jwt.decode(issuer.mint("default", "reviews"), options={"verify_signature": False})
    assert len(claims["jti"]) == 32
