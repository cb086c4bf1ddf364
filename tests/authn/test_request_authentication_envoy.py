"""RequestAuthentication end to end: `controlplane serve` fetches a jwksUri from a JWKS
server on loopback and inlines the keys into a real Envoy sidecar's jwt_authn filter.

Topology: the app ``api`` (echoing the headers it received) behind its sidecar, bound on
127.0.47.11:9080 (PERMISSIVE, so plain HTTP reaches it); requests go straight to it. The
control plane refetches JWKS every half second here (20 minutes by default).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.control_plane import served_control_plane
from tests.harness.envoy import EnvoyProcess
from tests.harness.jwt_issuer import JwksServer, TestIssuer, tamper
from tests.harness.ports import free_port
from tests.harness.wait import wait_for
from tests.mtls.mesh import NAMESPACE, PORT, Workload, dump, http_request, sidecar, workload_docs
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

ADDRESS = "127.0.47.11"
ISSUER = "https://issuer.test"
DOWN_ISSUER = "https://down.test"  # its jwksUri never answers: no key, every token refused


def _request_authentication(jwks_uri: str, down_uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
        "metadata": {"name": "api-jwt", "namespace": NAMESPACE},
        "spec": {
            "selector": {"matchLabels": {"app": "api"}},
            "jwtRules": [
                {"issuer": ISSUER, "jwksUri": jwks_uri,
                 "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"},
                                          {"header": "x-jwt-team", "claim": "team"}]},
                {"issuer": DOWN_ISSUER, "jwksUri": down_uri},
            ],
        },
    }


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("authn")
    config = workdir / "config"
    config.mkdir()
    issuer = TestIssuer(ISSUER)
    with contextlib.ExitStack() as stack:
        jwks = stack.enter_context(JwksServer(issuer))
        app = stack.enter_context(FastUpstream("api"))
        workload = Workload("api", ADDRESS, "api", app.port)
        down_uri = f"http://127.0.0.1:{free_port()}/jwks.json"  # nothing listens there
        (config / "mesh.yaml").write_text(dump([*workload_docs(workload), _request_authentication(jwks.jwks_uri, down_uri)]))
        cp = stack.enter_context(served_control_plane(
            workdir, config, "--jwks-refresh-interval", "0.5", "--jwks-refresh-on-failure", "0.2",
        ))
        envoy = stack.enter_context(sidecar(
            workdir, cp.ca_dir, cp.xds_tls_port, name="api", address=ADDRESS, service_account="api",
            labels=workload.labels,
        ))
        envoy.wait_ready()
        yield {"cp": cp, "issuer": issuer, "jwks": jwks, "envoy": envoy}


def call(token: str | None = None, **headers: str) -> tuple[int, dict[str, Any]]:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    status, _, echo = http_request(ADDRESS, PORT, headers=headers)
    return status, echo.get("headers", {})


def accepted(token: str) -> bool:
    return call(token)[0] == 200


def test_valid_token_passes_and_its_claims_reach_the_app(mesh: dict[str, Any]) -> None:
    token = mesh["issuer"].token("alice", team="books")
    wait_for(lambda: accepted(token), message="a token signed with the served key accepted")
    status, headers = call(token)
    assert status == 200
    assert headers["x-jwt-sub"] == "alice" and headers["x-jwt-team"] == "books"
    assert "authorization" not in headers  # forwardOriginalToken is false: Envoy strips it


def test_invalid_tokens_get_401_and_no_token_passes(mesh: dict[str, Any]) -> None:
    issuer: TestIssuer = mesh["issuer"]
    wait_for(lambda: accepted(issuer.token()), message="keys served")
    assert call(tamper(issuer.token()))[0] == 401
    assert call(TestIssuer(ISSUER, kid=issuer.kid).token())[0] == 401  # right issuer, wrong key
    assert call(TestIssuer("https://unknown.test").token())[0] == 401  # no provider for it
    assert call("not-a-jwt")[0] == 401
    # The issuer whose keys were never fetched: a JWKS nobody holds the key to stands in.
    assert call(TestIssuer(DOWN_ISSUER).token())[0] == 401
    # No token: passes (only an AuthorizationPolicy with requestPrincipals requires one).
    status, headers = call()
    assert status == 200 and "x-jwt-sub" not in headers
    # A client cannot forge the claim headers: Envoy removes them, or overwrites them from
    # a verified token.
    assert "x-jwt-sub" not in call(**{"x-jwt-sub": "root"})[1]
    assert call(issuer.token("alice"), **{"x-jwt-sub": "root"})[1]["x-jwt-sub"] == "alice"


def test_rotation_is_followed_without_restart_and_a_failed_fetch_keeps_the_keys(mesh: dict[str, Any]) -> None:
    issuer: TestIssuer = mesh["issuer"]
    jwks: JwksServer = mesh["jwks"]
    envoy: EnvoyProcess = mesh["envoy"]
    pid = envoy.process.pid if envoy.process else None
    old = issuer.token("before-rotation")
    wait_for(lambda: accepted(old), message="the first key accepted")

    issuer.rotate()
    new = issuer.token("after-rotation")
    wait_for(lambda: accepted(new), message="a token signed with the rotated key accepted")
    assert call(old)[0] == 401  # the old key left the JWKS
    assert call(new)[1]["x-jwt-sub"] == "after-rotation"

    # The JWKS server fails: the control plane keeps pushing the last good keys.
    jwks.status = 503
    try:
        seen = jwks.requests
        wait_for(lambda: jwks.requests >= seen + 3, message="several failed refreshes")
        wait_for(lambda: "pilot_jwks_resolver_network_fetch_fail_total" in _failures(mesh), message="failures counted")
        assert call(new)[0] == 200
        assert call(old)[0] == 401
    finally:
        jwks.status = 200
    assert envoy.process is not None and envoy.process.pid == pid and envoy.process.poll() is None


def _failures(mesh: dict[str, Any]) -> str:
    """The control plane's JWKS fetch failure counter line, when it is above zero."""
    status, text = mesh["cp"].get("/metrics")
    assert status == 200
    lines = [line for line in text.splitlines() if line.startswith("pilot_jwks_resolver_network_fetch_fail_total ")]
    return lines[0] if lines and float(lines[0].split()[-1]) > 0 else ""


def test_the_sidecar_holds_inline_keys_and_no_route_to_the_issuer(mesh: dict[str, Any]) -> None:
    envoy: EnvoyProcess = mesh["envoy"]
    # The listener names the filter's config; the config (keys inline) comes over ECDS.
    listeners = json.dumps(envoy.config_dump("dynamic_listeners"))
    assert '"name": "default.jwt-authn"' in listeners and "config_discovery" in listeners
    assert "local_jwks" not in listeners
    configs = {e["ecds_filter"]["name"]: e["ecds_filter"]["typed_config"]
               for e in envoy.config_dump("ecds_filters")["configs"]}
    jwt = json.dumps(configs["default.jwt-authn"])
    assert "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication" in jwt and "local_jwks" in jwt
    assert "remote_jwks" not in jwt + listeners


def test_a_key_rotation_never_changes_the_listener(mesh: dict[str, Any]) -> None:
    """Keys live in the jwt_authn config served over ECDS: a rotation reaches Envoy as a new
    filter config, and no listener is updated or drained."""
    envoy: EnvoyProcess = mesh["envoy"]
    issuer: TestIssuer = mesh["issuer"]
    updates = envoy.stat("listener_manager.lds.update_success")
    reloads = envoy.stat("extension_config_discovery.http_filter.default.jwt-authn.config_reload") or 0
    issuer.rotate()
    token = issuer.token(sub="after-rotation")
    wait_for(lambda: accepted(token), message="a token signed with the new key accepted")
    assert (envoy.stat("extension_config_discovery.http_filter.default.jwt-authn.config_reload") or 0) > reloads
    assert envoy.stat("listener_manager.lds.update_success") == updates
    assert (envoy.stat("listener_manager.total_filter_chains_draining") or 0) == 0
