"""The Gateway API Bookinfo sample through a real Envoy gateway: `controlplane serve` on a folder
holding the sample (samples-more/bookinfo/gateway-api/bookinfo-gateway.yaml), a router Envoy
bootstrapped with the label Istio gives the deployment it creates for the Gateway
(``gateway.networking.k8s.io/gateway-name: bookinfo-gateway``), productpage on loopback.

/productpage reaches the app, a path the HTTPRoute does not list gets 404, a route added to
the folder is served without a restart, and every config is ACKed. A second Gateway, deployed by
hand (``addresses`` names a Service whose pods are the same router), terminates HTTPS with the
certificate of its ``certificateRefs`` Secret (served over SDS as kubernetes-gateway://...); on a
second port its frontend validation (``spec.tls.frontend``) checks clients against the CA of a
ConfigMap (served as configmap://...). A ListenerSet in a team's namespace adds an HTTPS listener
to that Gateway, with the team's own certificate and route. A BackendTLSPolicy makes the gateway
call an HTTPS backend with the policy's hostname as SNI, verifying it against a ConfigMap's CA:
a backend the CA did not sign is refused. With ``wellKnownCACertificates: System`` the backend is
verified against the OS trust bundle the control plane found (here ``SSL_CERT_FILE``, holding a
test CA): a backend that CA signed is reached, one signed by another CA is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gateway.support import (
    common_name,
    dump,
    gateway_envoy,
    get,
    https_get,
    refused,
    service,
    tls_client,
    tls_secret,
)
from tests.harness.control_plane import served_control_plane
from tests.harness.pki import LocalCA
from tests.harness.ports import free_address
from tests.harness.upstream import HttpUpstream
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SAMPLE = (Path(__file__).resolve().parents[3] / "shared" / "conformance" / "istio" / "samples-more" / "bookinfo"
          / "gateway-api" / "bookinfo-gateway.yaml")
LABELS = {"gateway.networking.k8s.io/gateway-name": "bookinfo-gateway"}
HTTPS, SECURE_HOST = 8443, "secure.example.com"
VERIFIED = 8444  # the port whose listener checks client certificates
TEAM, TEAM_HOST = 8445, "team.example.com"  # a ListenerSet's listener
BACKEND_HOST = "backend.example.com"  # an HTTPS backend, under a BackendTLSPolicy
# HTTPS backends under BackendTLSPolicies trusting the system's CAs: one signed by the CA the
# control plane takes for the system's, one by another
PUBLIC_HOST, STRANGER_HOST = "public.example.com", "stranger.example.com"


def _secure_gateway(ca: LocalCA, client_ca: LocalCA) -> list[dict[str, Any]]:
    """A hand-deployed Gateway: its Hostname address names a Service selecting the router."""
    api = "gateway.networking.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "edge", "namespace": "default"},
         "spec": {"selector": LABELS, "ports": [{"name": "https", "port": HTTPS},
                                                {"name": "https-verified", "port": VERIFIED},
                                                {"name": "https-team", "port": TEAM}]}},
        tls_secret("secure-cert", "default", ca.issue(SECURE_HOST, dns=(SECURE_HOST,))),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "client-ca", "namespace": "default"},
         "data": {"ca.crt": client_ca.pem.decode()}},
        {"apiVersion": api, "kind": "Gateway", "metadata": {"name": "secure", "namespace": "default"},
         "spec": {"gatewayClassName": "istio", "addresses": [{"type": "Hostname", "value": "edge"}],
                  "allowedListeners": {"namespaces": {"from": "All"}},
                  # only the VERIFIED port asks for client certificates
                  "tls": {"frontend": {"default": {}, "perPort": [{"port": VERIFIED, "tls": {"validation": {
                      "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "client-ca"}]}}}]}},
                  "listeners": [{"name": "https", "port": HTTPS, "protocol": "HTTPS", "hostname": SECURE_HOST,
                                 "tls": {"certificateRefs": [{"name": "secure-cert"}]}},
                                {"name": "https-verified", "port": VERIFIED, "protocol": "HTTPS",
                                 "hostname": SECURE_HOST, "tls": {"certificateRefs": [{"name": "secure-cert"}]}}]}},
        {"apiVersion": api, "kind": "HTTPRoute", "metadata": {"name": "secure", "namespace": "default"},
         "spec": {"parentRefs": [{"name": "secure"}],
                  "rules": [{"backendRefs": [{"name": "productpage", "port": 9080}]}]}},
    ]


def _team(ca: LocalCA) -> list[dict[str, Any]]:
    """A team's ListenerSet on the hand-deployed Gateway: its listener, certificate and route
    live in the team's namespace."""
    api = "gateway.networking.k8s.io/v1"
    return [
        tls_secret("team-cert", "team", ca.issue(TEAM_HOST, dns=(TEAM_HOST,))),
        {"apiVersion": api, "kind": "ListenerSet", "metadata": {"name": "team", "namespace": "team"},
         "spec": {"parentRef": {"name": "secure", "namespace": "default"},
                  "listeners": [{"name": "https", "port": TEAM, "protocol": "HTTPS", "hostname": TEAM_HOST,
                                 "tls": {"certificateRefs": [{"name": "team-cert"}]}}]}},
        {"apiVersion": api, "kind": "HTTPRoute", "metadata": {"name": "team", "namespace": "team"},
         "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "ListenerSet", "name": "team"}],
                  "rules": [{"backendRefs": [{"name": "team-app", "port": 9080}]}]}},
    ]


def _backend_tls(backend_ca: LocalCA) -> list[dict[str, Any]]:
    """An HTTPRoute to an HTTPS backend and the BackendTLSPolicy that says how to call it."""
    api = "gateway.networking.k8s.io/v1"
    return [
        _backend_ca_config_map(backend_ca),
        {"apiVersion": api, "kind": "HTTPRoute", "metadata": {"name": "backend", "namespace": "default"},
         "spec": {"parentRefs": [{"name": "bookinfo-gateway"}], "hostnames": [BACKEND_HOST],
                  "rules": [{"backendRefs": [{"name": "secure-backend", "port": 443}]}]}},
        {"apiVersion": api, "kind": "BackendTLSPolicy", "metadata": {"name": "secure-backend", "namespace": "default"},
         "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "secure-backend"}],
                  "validation": {"hostname": BACKEND_HOST,
                                 "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "backend-ca"}],
                                 "subjectAltNames": [{"type": "Hostname", "hostname": BACKEND_HOST}]}}},
    ]


def _system_trusting(name: str, host: str, upstream_port: int) -> list[dict[str, Any]]:
    """A Service on loopback, an HTTPRoute to it and a BackendTLSPolicy trusting the system's CAs."""
    api = "gateway.networking.k8s.io/v1"
    return service(name, 443, "127.0.0.1", upstream_port, port_name="https") + [
        {"apiVersion": api, "kind": "HTTPRoute", "metadata": {"name": name, "namespace": "default"},
         "spec": {"parentRefs": [{"name": "bookinfo-gateway"}], "hostnames": [host],
                  "rules": [{"backendRefs": [{"name": name, "port": 443}]}]}},
        {"apiVersion": api, "kind": "BackendTLSPolicy", "metadata": {"name": name, "namespace": "default"},
         "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": name}],
                  "validation": {"hostname": host, "wellKnownCACertificates": "System"}}},
    ]


def _backend_ca_config_map(ca: LocalCA) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "backend-ca", "namespace": "default"},
            "data": {"ca.crt": ca.pem.decode()}}


def _sample() -> tuple[list[dict[str, Any]], int]:
    """The sample as written; its listener port 80 moves to 8080 only when not root."""
    docs = [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d]
    port = 80
    if os.geteuid() != 0:
        port = 8080
        for d in docs:
            if d["kind"] == "Gateway":
                d["spec"]["listeners"][0]["port"] = port
    return docs, port


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("gateway-api-bookinfo")
    config = workdir / "config"
    config.mkdir()
    docs, port = _sample()
    address = free_address("127.0.43", (port, HTTPS, VERIFIED, TEAM))
    ca, client_ca, backend_ca = LocalCA("gateway-api-ca"), LocalCA("gateway-api-clients"), LocalCA("backend-ca")
    with contextlib.ExitStack() as stack:
        app = stack.enter_context(HttpUpstream("productpage"))
        backend = stack.enter_context(HttpUpstream(
            "secure-backend", tls=backend_ca.issue(BACKEND_HOST, dns=(BACKEND_HOST,))))
        system_ca = LocalCA("system-root")
        public = stack.enter_context(HttpUpstream("public", tls=system_ca.issue(PUBLIC_HOST, dns=(PUBLIC_HOST,))))
        stranger = stack.enter_context(HttpUpstream(
            "stranger", tls=LocalCA("unknown-root").issue(STRANGER_HOST, dns=(STRANGER_HOST,))))
        (workdir / "system-roots.pem").write_bytes(system_ca.pem)
        reviews = stack.enter_context(HttpUpstream("reviews"))
        team = stack.enter_context(HttpUpstream("team-app"))
        (config / "bookinfo-gateway.yaml").write_text(dump(docs))
        (config / "secure.yaml").write_text(dump(_secure_gateway(ca, client_ca)))
        (config / "team.yaml").write_text(dump(_team(ca) + service("team-app", 9080, "127.0.0.1", team.port, "team")))
        (config / "apps.yaml").write_text(dump(
            service("productpage", 9080, "127.0.0.1", app.port) + service("reviews", 9080, "127.0.0.1", reviews.port)
            + service("secure-backend", 443, "127.0.0.1", backend.port, port_name="https")
        ))
        (config / "backend-tls.yaml").write_text(dump(_backend_tls(backend_ca)))
        (config / "system-tls.yaml").write_text(dump(_system_trusting("public", PUBLIC_HOST, public.port)
                                                     + _system_trusting("stranger", STRANGER_HOST, stranger.port)))
        cp = stack.enter_context(served_control_plane(
            workdir, config, env={"SSL_CERT_FILE": str(workdir / "system-roots.pem")}))
        gateway = stack.enter_context(gateway_envoy(
            workdir, cp.ca_dir, cp.xds_tls_port, name="bookinfo-gateway", address=address, namespace="default",
            labels=LABELS, service_account="bookinfo-gateway-istio",
        ))
        gateway.wait_ready()
        yield {"address": address, "port": port, "config": config, "gateway": gateway, "ca": ca,
               "client_ca": client_ca, "backend": backend, "backend_ca": backend_ca, "public": public,
               "stranger": stranger}


def test_productpage_through_the_gateway_api_sample(bookinfo: dict[str, Any]) -> None:
    address, port = bookinfo["address"], bookinfo["port"]
    _, headers, _ = wait_for(
        lambda: (r := get(address, port, "bookinfo.example.com", "/productpage"))[0] == 200 and r,
        message="productpage through the Gateway API gateway",
    )
    assert headers["x-upstream"] == "productpage"
    assert get(address, port, "bookinfo.example.com", "/static/app.js")[0] == 200
    assert get(address, port, "bookinfo.example.com", "/admin")[0] == 404  # not a path of the HTTPRoute
    assert get(address, port, "bookinfo.example.com", "/productpage/extra")[0] == 404  # Exact match only


def test_a_route_added_to_the_folder_is_served(bookinfo: dict[str, Any]) -> None:
    address, port = bookinfo["address"], bookinfo["port"]
    (bookinfo["config"] / "reviews-route.yaml").write_text(dump([{
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "bookinfo-gateway"}],
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/reviews"}}],
                            "backendRefs": [{"name": "reviews", "port": 9080}]}]},
    }]))
    _, headers, _ = wait_for(
        lambda: (r := get(address, port, "bookinfo.example.com", "/reviews/1"))[0] == 200 and r,
        message="the new HTTPRoute on the gateway",
    )
    assert headers["x-upstream"] == "reviews"
    assert get(address, port, "bookinfo.example.com", "/productpage")[0] == 200


def test_https_with_the_certificate_of_the_certificate_ref(bookinfo: dict[str, Any]) -> None:
    _, cert, _ = wait_for(
        lambda: (r := _https(bookinfo)) is not None and r[0] == 200 and r,
        message="HTTPS through the hand-deployed Gateway",
    )
    assert common_name(cert) == SECURE_HOST


def test_frontend_validation_checks_clients_against_the_config_map_ca(bookinfo: dict[str, Any]) -> None:
    verified = tls_client(bookinfo["ca"].pem, bookinfo["client_ca"].issue("client-one", server=False))
    _, cert, _ = wait_for(
        lambda: (r := _https(bookinfo, VERIFIED, verified)) is not None and r[0] == 200 and r,
        message="HTTPS with a client certificate from the ConfigMap's CA",
    )
    assert common_name(cert) == SECURE_HOST
    assert refused(lambda: https_get(bookinfo["address"], VERIFIED, SECURE_HOST, tls_client(bookinfo["ca"].pem)))
    stranger = tls_client(bookinfo["ca"].pem, LocalCA("stranger").issue("intruder", server=False))
    assert refused(lambda: https_get(bookinfo["address"], VERIFIED, SECURE_HOST, stranger))
    # the other port's listener, not under a per-port validation, still takes anyone
    assert https_get(bookinfo["address"], HTTPS, SECURE_HOST, tls_client(bookinfo["ca"].pem))[0] == 200


def test_a_listener_set_adds_a_teams_listener_with_its_own_certificate(bookinfo: dict[str, Any]) -> None:
    _, cert, body = wait_for(
        lambda: (r := _https(bookinfo, TEAM, host=TEAM_HOST)) is not None and r[0] == 200 and r,
        message="HTTPS through the ListenerSet's listener",
    )
    assert common_name(cert) == TEAM_HOST  # the team's Secret, from the team's namespace
    assert json.loads(body)["name"] == "team-app"  # the team's route


def test_a_backend_tls_policy_makes_the_gateway_call_and_verify_an_https_backend(bookinfo: dict[str, Any]) -> None:
    address, port, backend = bookinfo["address"], bookinfo["port"], bookinfo["backend"]
    _, headers, _ = wait_for(
        lambda: (r := get(address, port, BACKEND_HOST, "/"))[0] == 200 and r,
        message="the HTTPS backend through the gateway, under its BackendTLSPolicy",
    )
    assert headers["x-upstream"] == "secure-backend"
    assert BACKEND_HOST in backend.server_names  # the policy's hostname as SNI
    # The CA the policy names no longer signed the backend's certificate: the gateway refuses it.
    path = bookinfo["config"] / "backend-tls.yaml"
    original = path.read_text()
    try:
        path.write_text(dump([_backend_ca_config_map(LocalCA("another-ca"))] + _backend_tls(bookinfo["backend_ca"])[1:]))
        wait_for(lambda: get(address, port, BACKEND_HOST, "/")[0] == 503, message="the unverified backend refused")
        requests = backend.requests
        assert [get(address, port, BACKEND_HOST, "/")[0] for _ in range(3)] == [503] * 3
        assert backend.requests == requests  # the handshakes failed: no request reached it
    finally:
        path.write_text(original)
    wait_for(lambda: get(address, port, BACKEND_HOST, "/")[0] == 200, message="verified again")


def test_a_backend_trusted_by_the_system_cas_is_verified_against_the_os_bundle(bookinfo: dict[str, Any]) -> None:
    address, port = bookinfo["address"], bookinfo["port"]
    _, headers, _ = wait_for(lambda: (r := get(address, port, PUBLIC_HOST, "/"))[0] == 200 and r,
                             message="the backend a system CA signed, through the gateway")
    assert headers["x-upstream"] == "public" and PUBLIC_HOST in bookinfo["public"].server_names
    assert get(address, port, STRANGER_HOST, "/")[0] == 503  # signed by a CA the system does not trust
    assert bookinfo["stranger"].requests == 0


def _https(bookinfo: dict[str, Any], port: int = HTTPS, client: Any = None,
           host: str = SECURE_HOST) -> tuple[int, Any, bytes] | None:
    try:
        return https_get(bookinfo["address"], port, host, client or tls_client(bookinfo["ca"].pem), "/anything")
    except OSError:  # not listening yet, or the certificate not there yet
        return None


def test_every_config_was_accepted(bookinfo: dict[str, Any]) -> None:
    stats = bookinfo["gateway"].stats()
    rejected = {k: v for k, v in stats.items() if k.endswith("update_rejected") and v}
    assert not rejected, rejected
