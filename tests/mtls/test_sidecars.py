"""Mutual TLS between real Envoy sidecars, configured by `controlplane serve` over TLS with a
token per sidecar (so each holds its own SPIFFE certificate, pushed over SDS).

Workloads: ``strict`` (PeerAuthentication STRICT), ``permissive`` (no policy: Istio's default),
``disabled`` (DISABLE); a ``legacy`` app with no sidecar; and ``spoofed``, a service whose Pod
claims service account ``expected`` while its address is really the permissive sidecar. The
client sidecar reaches them all through auto mTLS (Pods labelled
``security.istio.io/tlsMode: istio``). The mesh (conftest.py) is shared by the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controlplane.ca import load_or_init_ca
from tests.harness.wait import wait_for
from tests.mtls.mesh import (
    CLIENT,
    PORT,
    SERVERS,
    http_request,
    refuses,
    spiffe_id,
    tls_context,
    xfcc_uri,
)

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


def via_client(host: str, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    status, _, echo = http_request(CLIENT, PORT, host_header=host, path=path, headers=headers)
    return status, echo


def _served(host: str) -> tuple[int, dict[str, Any]]:
    """Through the client sidecar, once its config and certificates are in place."""
    return wait_for(lambda: (r := via_client(host))[0] == 200 and r, message=f"{host} through the client sidecar")


def direct(name: str, **kwargs: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
    return http_request(SERVERS[name][0], PORT, **kwargs)


def _mesh_tls(mesh: dict[str, Any], service_account: str) -> Any:
    issued = mesh["ca"].issue_workload("default", service_account)
    return tls_context(issued.chain_pem, issued.private_key_pem, mesh["ca"].bundle.pem)


# --- client sidecar -> server sidecar ---------------------------------------------------------


def test_strict_server_sees_the_clients_spiffe_id(mesh: dict[str, Any]) -> None:
    _, echo = _served("strict")
    assert echo["name"] == "strict"
    assert xfcc_uri(echo) == spiffe_id("client")
    # The hop was TLS: the client's cluster did handshakes, the server's listener too.
    client, server = mesh["envoys"]["client"], mesh["envoys"]["strict"]
    assert (client.stat("cluster.outbound|9080||strict.default.svc.cluster.local.ssl.handshake") or 0) >= 1
    assert (server.stat(f"listener.{SERVERS['strict'][0]}_{PORT}.ssl.handshake") or 0) >= 1


def test_strict_refuses_a_plaintext_client(mesh: dict[str, Any]) -> None:
    _served("strict")  # the listener is up: refusal is policy, not absence
    assert refuses(lambda: direct("strict", path="/plain-attempt"))
    assert mesh["apps"]["strict"].paths["/plain-attempt"] == 0


def test_strict_accepts_only_certificates_of_our_ca(mesh: dict[str, Any], tmp_path: Path) -> None:
    _served("strict")
    status, _, echo = direct("strict", tls=_mesh_tls(mesh, "direct"))
    assert status == 200 and xfcc_uri(echo) == spiffe_id("direct")
    other = load_or_init_ca(tmp_path / "other-ca", "cluster.local")
    issued = other.issue_workload("default", "client")  # same SPIFFE ID, foreign CA
    foreign = tls_context(issued.chain_pem, issued.private_key_pem, mesh["ca"].bundle.pem)
    assert refuses(lambda: direct("strict", tls=foreign, path="/foreign"))
    assert mesh["apps"]["strict"].paths["/foreign"] == 0


def test_permissive_serves_mtls_and_plaintext(mesh: dict[str, Any]) -> None:
    status, echo = _served("permissive")
    assert xfcc_uri(echo) == spiffe_id("client")
    status, _, echo = direct("permissive")
    assert status == 200 and echo["name"] == "permissive"
    assert xfcc_uri(echo) is None


def test_a_forged_xfcc_header_never_reaches_the_app(mesh: dict[str, Any]) -> None:
    forged = {"x-forwarded-client-cert": f"URI={spiffe_id('admin')}"}
    status, _, echo = direct("permissive", headers=forged)
    assert status == 200 and xfcc_uri(echo) is None
    status, echo = via_client("permissive", headers=forged)
    assert status == 200 and xfcc_uri(echo) == spiffe_id("client")


def test_disable_serves_plaintext_only(mesh: dict[str, Any]) -> None:
    _, echo = _served("disabled")
    assert echo["name"] == "disabled" and xfcc_uri(echo) is None  # auto mTLS chose plaintext
    status, _, echo = direct("disabled")
    assert status == 200
    assert refuses(lambda: direct("disabled", tls=_mesh_tls(mesh, "direct")))


def test_plaintext_endpoint_without_sidecar_still_gets_plaintext(mesh: dict[str, Any]) -> None:
    _, echo = _served("legacy")
    assert echo["name"] == "legacy" and "x-forwarded-client-cert" not in echo["headers"]


def test_client_refuses_a_server_with_the_wrong_identity(mesh: dict[str, Any]) -> None:
    _served("permissive")  # the client is configured and holds its certificate
    before = mesh["apps"]["permissive"].paths["/spoofed"]
    status, _ = via_client("spoofed", path="/spoofed")
    assert status == 503  # the permissive sidecar's SPIFFE ID is not spiffe://.../sa/expected
    assert mesh["apps"]["permissive"].paths["/spoofed"] == before
    client = mesh["envoys"]["client"]
    failures = client.stat("cluster.outbound|9080||spoofed.default.svc.cluster.local.ssl.fail_verify_san") or 0
    assert failures >= 1
