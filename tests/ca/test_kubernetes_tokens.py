"""Kubernetes ServiceAccount tokens, checked with TokenReview through the official client,
against a TEST DOUBLE of the TokenReview endpoint (no kube-apiserver on these machines)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client as k8s

from controlplane.auth import (
    AuthenticationUnavailable,
    Authenticator,
    PermissionDenied,
    ProvenIdentity,
    TokenIssuer,
    Unauthenticated,
    claim_from_node,
)
from controlplane.auth.kubernetes_tokens import KubernetesTokenReviewer

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
# token -> (authenticated, username, audiences) as the fake API server answers
KNOWN_TOKENS = {
    "reviews-token": (True, "system:serviceaccount:default:reviews", ["istio-ca"]),
    "other-audience-token": (
        True,
        "system:serviceaccount:default:reviews",
        ["https://kubernetes.default.svc"],
    ),
    "user-token": (True, "alice@example.com", ["istio-ca"]),
}


class FakeTokenReviewAPI(BaseHTTPRequestHandler):
    """Test double: answers POST tokenreviews like kube-apiserver does."""

    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        token = body["spec"]["token"]
        if self.path != REVIEW_PATH or token == "explode":
            self._reply(500, {"kind": "Status", "status": "Failure", "code": 500})
            return
        authenticated, username, audiences = KNOWN_TOKENS.get(token, (False, None, []))
        status: dict = {"authenticated": authenticated}
        if authenticated:
            status |= {"user": {"username": username, "uid": "1234"}, "audiences": audiences}
        else:
            status["error"] = "invalid bearer token"
        self._reply(201, {**body, "status": status})

    def _reply(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_client() -> Iterator[k8s.ApiClient]:
    FakeTokenReviewAPI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTokenReviewAPI)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        config = k8s.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
        config.api_key = {"authorization": "control-plane-own-token"}
        config.api_key_prefix = {"authorization": "Bearer"}
        with k8s.ApiClient(config) as api_client:
            yield api_client
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def authenticator(api_client: k8s.ApiClient) -> Authenticator:
    local = TokenIssuer(ec.generate_private_key(ec.SECP256R1())).verifier("cluster.local")
    return Authenticator([local, KubernetesTokenReviewer(api_client, "cluster.local")])


async def test_service_account_token_is_reviewed(authenticator: Authenticator) -> None:
    identity = await authenticator.authenticate([("authorization", "Bearer reviews-token")])
    assert identity == ProvenIdentity("cluster.local", "default", "reviews")
    [request] = FakeTokenReviewAPI.requests
    assert request["path"] == REVIEW_PATH
    assert request["body"]["kind"] == "TokenReview"
    assert request["body"]["spec"] == {"token": "reviews-token", "audiences": ["istio-ca"]}
    assert request["auth"] == "Bearer control-plane-own-token"


async def test_rejected_token_is_unauthenticated(authenticator: Authenticator) -> None:
    with pytest.raises(Unauthenticated, match="invalid bearer token"):
        await authenticator.authenticate([("authorization", "Bearer stolen-or-expired")])


async def test_token_for_another_audience_is_unauthenticated(authenticator: Authenticator) -> None:
    with pytest.raises(Unauthenticated, match="audience"):
        await authenticator.authenticate([("authorization", "Bearer other-audience-token")])


async def test_a_user_is_not_a_service_account(authenticator: Authenticator) -> None:
    with pytest.raises(Unauthenticated, match="not a service account"):
        await authenticator.authenticate([("authorization", "Bearer user-token")])


async def test_claiming_another_service_account_is_denied(authenticator: Authenticator) -> None:
    claim = claim_from_node(
        "sidecar~10.0.0.1~ratings-v1.default~default.svc.cluster.local",
        {"NAMESPACE": "default", "SERVICE_ACCOUNT": "ratings"},
    )
    with pytest.raises(PermissionDenied):
        await authenticator.authenticate([("authorization", "Bearer reviews-token")], claim)


async def test_api_server_failure_is_unavailable_not_a_pass(authenticator: Authenticator) -> None:
    with pytest.raises(AuthenticationUnavailable):
        await authenticator.authenticate([("authorization", "Bearer explode")])


async def test_unreachable_api_server_is_unavailable() -> None:
    config = k8s.Configuration(host="http://127.0.0.1:9")  # discard port: nothing listens
    with k8s.ApiClient(config) as api_client:
        reviewer = KubernetesTokenReviewer(api_client, "cluster.local")
        with pytest.raises(AuthenticationUnavailable):
            await reviewer.verify("reviews-token")
