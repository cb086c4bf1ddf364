"""RequestAuthentication and AuthorizationPolicy together, through a real Envoy sidecar (the
issue's "show it works"): jwt_authn verifies end-user tokens with keys the control plane
fetched from a JWKS server on loopback, then RBAC decides on ``requestPrincipals`` and
``request.auth.claims[...]``.

Topology: the app ``books`` (echoing the headers it received) behind its sidecar at
127.0.48.N:9080 (a free one), PERMISSIVE, requests straight to it. Policies on ``books``:

- ALLOW ``/api*`` for any request principal of the test issuer (a valid token required);
- ALLOW ``/books*`` when the claim ``team`` is ``books``;
- ALLOW ``/admin*`` when the list claim ``groups`` holds ``admins``;
- DENY ``/strict*`` for requests without a request principal (Istio's "require JWT" idiom),
  beside an ALLOW of ``/strict*`` for everyone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.control_plane import served_control_plane
from tests.harness.jwt_issuer import JwksServer, TestIssuer, tamper
from tests.harness.ports import free_address
from tests.harness.wait import wait_for
from tests.mtls.mesh import NAMESPACE, PORT, Workload, dump, http_request, sidecar, workload_docs
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ADDRESS = free_address("127.0.48", (PORT,))
ISSUER = "https://issuer.test"
SELECTOR = {"matchLabels": {"app": "books"}}


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "security.istio.io/v1", "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"selector": SELECTOR, **spec}}  # fmt: skip


def _policies(jwks_uri: str) -> list[dict[str, Any]]:
    return [
        _doc("RequestAuthentication", "books-jwt", {"jwtRules": [{"issuer": ISSUER, "jwksUri": jwks_uri}]}),
        _doc("AuthorizationPolicy", "books-allow", {"rules": [
            {"from": [{"source": {"requestPrincipals": [f"{ISSUER}/*"]}}], "to": [{"operation": {"paths": ["/api*"]}}]},
            {"to": [{"operation": {"paths": ["/books*"]}}],
             "when": [{"key": "request.auth.claims[team]", "values": ["books"]}]},
            {"to": [{"operation": {"paths": ["/admin*"]}}],
             "when": [{"key": "request.auth.claims[groups]", "values": ["admins"]}]},
            {"to": [{"operation": {"paths": ["/strict*"]}}]},
        ]}),
        _doc("AuthorizationPolicy", "books-require-jwt", {"action": "DENY", "rules": [
            {"from": [{"source": {"notRequestPrincipals": ["*"]}}], "to": [{"operation": {"paths": ["/strict*"]}}]},
        ]}),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIssuer]:
    workdir: Path = tmp_path_factory.mktemp("jwt_authz")
    config = workdir / "config"
    config.mkdir()
    test_issuer = TestIssuer(ISSUER)
    with contextlib.ExitStack() as stack:
        jwks = stack.enter_context(JwksServer(test_issuer))
        app = stack.enter_context(FastUpstream("books"))
        workload = Workload("books", ADDRESS, "books", app.port)
        (config / "mesh.yaml").write_text(
            dump([*workload_docs(workload), *_policies(jwks.jwks_uri)])
        )
        cp = stack.enter_context(served_control_plane(workdir, config))
        envoy = stack.enter_context(
            sidecar(
                workdir,
                cp.ca_dir,
                cp.xds_tls_port,
                name="books",
                address=ADDRESS,
                service_account="books",
                labels=workload.labels,
            )
        )
        envoy.wait_ready()
        token = test_issuer.token("alice")
        wait_for(lambda: status("/api", token) == 200, message="the fetched keys in force")
        yield test_issuer


def status(path: str, token: str | None = None) -> int:
    """The status of a request straight to books' sidecar, with ``token`` as a bearer token."""
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return http_request(ADDRESS, PORT, path=path, headers=headers)[0]


def test_a_valid_token_gets_200_a_tampered_one_401_none_403(issuer: TestIssuer) -> None:
    assert status("/api/orders", issuer.token("alice")) == 200
    assert status("/api/orders", tamper(issuer.token("alice"))) == 401  # jwt_authn, before RBAC
    assert (
        status("/api/orders", TestIssuer(ISSUER, kid=issuer.kid).token()) == 401
    )  # same kid, another key
    assert status("/api/orders") == 403  # no token: passes jwt_authn, RBAC requires a principal


def test_a_claim_condition_allows_one_value_and_denies_another(issuer: TestIssuer) -> None:
    assert status("/books/1", issuer.token("alice", team="books")) == 200
    assert status("/books/1", issuer.token("bob", team="music")) == 403
    assert status("/books/1", issuer.token("carol")) == 403  # no such claim
    assert status("/books/1") == 403
    # A list claim matches when it holds the value.
    assert status("/admin", issuer.token("dana", groups=["dev", "admins"])) == 200
    assert status("/admin", issuer.token("erin", groups=["dev"])) == 403


def test_deny_without_a_request_principal(issuer: TestIssuer) -> None:
    assert status("/strict") == 403
    assert status("/strict", issuer.token("alice")) == 200
    assert status("/strict", tamper(issuer.token("alice"))) == 401
