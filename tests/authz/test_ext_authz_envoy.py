"""AuthorizationPolicy CUSTOM enforced by a real Envoy sidecar with external authorizers on
loopback, configured by `controlplane serve --mesh-config` (Istio's external authorization
task, locally).

Topology (module scope): the workload ``api`` behind its sidecar at 127.0.74.N (a free one),
serving HTTP on 9080 (an app echoing the headers it received) and TCP on 5432 (an echo),
PERMISSIVE, so plain and mTLS clients reach it directly. Authorizers (``tests/harness/ext_authz.py``): an
HTTP one, reached through a ServiceEntry (``ext-authz-http.local`` -> 127.0.0.1, as Istio's
``local-ext-authz.yaml`` sample), and a gRPC one (``envoy.service.auth.v3.Authorization``)
named by IP, outside the registry. Both allow a request carrying ``x-ext-authz: allow``.
Two more providers point at ports where nothing listens, one failing open, one closed.
Each test writes one CUSTOM policy (one provider per workload, as Istio) and waits until the
sidecar holds it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controlplane.ca import load_ca_folder
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.echo import EchoServer
from tests.harness.envoy import EnvoyProcess
from tests.harness.ext_authz import DENIED_BODY, RESULT_HEADER, GrpcAuthorizer, HttpAuthorizer
from tests.harness.ports import free_address, free_port
from tests.harness.wait import wait_for
from tests.mtls.mesh import NAMESPACE, PORT, dump, pod, sidecar, tls_context
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

TCP_PORT = 5432
API = free_address("127.0.74", (PORT, TCP_PORT))
RBAC_DENIED = b"RBAC: access denied"
_CUSTOM_NAME = re.compile(
    r"istio-ext-authz-[a-z-]+-ns\[[^\]]*\]-policy\[[^\]]*\]-rule\[\d+\](?:-deny-due-to-bad-CUSTOM-action)?"
)


def _doc(kind: str, api: str, name: str, **body: Any) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        **body,
    }


def _workload(http_port: int, tcp_port: int) -> list[dict[str, Any]]:
    labels = {"app": "api"}
    ports = [{"name": "http", "port": PORT}, {"name": "tcp-echo", "port": TCP_PORT}]
    slice_ = _doc(
        "EndpointSlice",
        "discovery.k8s.io/v1",
        "api-1",
        addressType="IPv4",
        ports=ports,
        endpoints=[
            {
                "addresses": [API],
                "targetRef": {"kind": "Pod", "name": "api-0", "namespace": NAMESPACE},
            }
        ],
    )
    slice_["metadata"]["labels"] = {"kubernetes.io/service-name": "api"}
    return [
        _doc("Service", "v1", "api", spec={"selector": labels, "ports": ports}),
        pod("api-0", labels, "api"),
        slice_,
        _doc("Sidecar", "networking.istio.io/v1", "api", spec={
            "workloadSelector": {"labels": labels},
            "ingress": [
                {"port": {"number": PORT, "protocol": "HTTP", "name": "http"}, "captureMode": "NONE",
                 "defaultEndpoint": f"127.0.0.1:{http_port}"},
                {"port": {"number": TCP_PORT, "protocol": "TCP", "name": "tcp-echo"}, "captureMode": "NONE",
                 "defaultEndpoint": f"127.0.0.1:{tcp_port}"},
            ],
            "egress": [{"hosts": ["~/*"]}],  # nothing in scope: the authorizer's cluster is added for it
        }),
    ]  # fmt: skip


def _service_entry(port: int) -> dict[str, Any]:
    return _doc("ServiceEntry", "networking.istio.io/v1", "ext-authz-http", spec={
        "hosts": ["ext-authz-http.local"], "endpoints": [{"address": "127.0.0.1"}],
        "ports": [{"name": "http", "number": port, "protocol": "HTTP"}], "resolution": "STATIC",
    })  # fmt: skip


def _mesh_config(http_port: int, grpc_port: int) -> dict[str, Any]:
    return {"extensionProviders": [
        {"name": "http-authz", "envoyExtAuthzHttp": {
            "service": "ext-authz-http.local", "port": str(http_port), "pathPrefix": "/check",
            "includeRequestHeadersInCheck": ["x-ext-authz"],
            "headersToUpstreamOnAllow": [RESULT_HEADER], "headersToDownstreamOnDeny": [RESULT_HEADER]}},
        {"name": "grpc-authz", "envoyExtAuthzGrpc": {"service": "127.0.0.1", "port": grpc_port}},
        {"name": "down-open", "envoyExtAuthzGrpc": {"service": "127.0.0.1", "port": free_port(), "failOpen": True}},
        {"name": "down-closed", "envoyExtAuthzHttp": {"service": "127.0.0.1", "port": free_port(), "statusOnError": "503"}},
    ]}  # fmt: skip


@dataclass
class ExtAuthzMesh:
    cp: ServedControlPlane
    config: Path
    envoy: EnvoyProcess
    http: HttpAuthorizer
    grpc: GrpcAuthorizer
    ca: Any

    def apply(self, provider: str, rules: list[dict[str, Any]]) -> None:
        """One CUSTOM policy ``ext`` for ``api``; wait until the sidecar holds exactly it."""
        doc = _doc("AuthorizationPolicy", "security.istio.io/v1", "ext", spec={
            "selector": {"matchLabels": {"app": "api"}}, "action": "CUSTOM", "provider": {"name": provider}, "rules": rules,
        })  # fmt: skip
        (self.config / "policies.yaml").write_text(dump([doc]))
        expected = {
            f"istio-ext-authz-{provider}-ns[{NAMESPACE}]-policy[ext]-rule[{i}]"
            for i in range(len(rules))
        }
        wait_for(lambda: {n.removesuffix("-deny-due-to-bad-CUSTOM-action") for n in self._custom_names()} == expected,
                 message=f"the sidecar holding {sorted(expected)}")  # fmt: skip
        # A listener Envoy replaces (not updated in place) keeps its sockets, and so takes new
        # connections with the old config, until it has drained.
        wait_for(lambda: self.envoy.stat("listener_manager.total_filter_chains_draining") == 0,
                 message="old filter chains drained")  # fmt: skip

    def _custom_names(self) -> set[str]:
        dump_ = json.loads(self.envoy.admin("/config_dump?resource=dynamic_listeners"))
        names: set[str] = set()
        for entry in dump_.get("configs", []):
            if "warming_state" in entry:
                return {"<warming>"}
            names |= set(_CUSTOM_NAME.findall(json.dumps(entry.get("active_state", {}))))
        return names

    def tls(self) -> ssl.SSLContext:
        issued = self.ca.issue_workload(NAMESPACE, "caller")
        return tls_context(issued.chain_pem, issued.private_key_pem, self.ca.bundle.pem)


@pytest.fixture(scope="module")
def ext_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtAuthzMesh]:
    workdir: Path = tmp_path_factory.mktemp("ext_authz")
    config = workdir / "config"
    config.mkdir()
    with contextlib.ExitStack() as stack:
        app = stack.enter_context(FastUpstream("api"))
        echo = stack.enter_context(EchoServer())
        http_authz = stack.enter_context(HttpAuthorizer())
        grpc_authz = stack.enter_context(GrpcAuthorizer())
        (config / "mesh.yaml").write_text(
            dump([*_workload(app.port, echo.port), _service_entry(http_authz.port)])
        )
        mesh_config = workdir / "meshconfig.yaml"
        mesh_config.write_text(dump([_mesh_config(http_authz.port, grpc_authz.port)]))
        cp = stack.enter_context(
            served_control_plane(workdir, config, "--mesh-config", str(mesh_config))
        )
        envoy = stack.enter_context(sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="api", address=API,
                                            service_account="api", labels={"app": "api"}))  # fmt: skip
        envoy.wait_ready()
        wait_for(lambda: request("/")[0] == 200, message="api reachable through its sidecar")
        yield ExtAuthzMesh(
            cp, config, envoy, http_authz, grpc_authz, load_ca_folder(cp.ca_dir, "cluster.local")
        )


def request(path: str, headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None,
            method: str = "GET") -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """An HTTP request straight to api's sidecar (plaintext, or mTLS with ``tls``)."""
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection(API, PORT, timeout=10)
    else:
        conn = http.client.HTTPSConnection(API, PORT, timeout=10, context=tls)
    try:
        conn.request(method, path, headers={"host": "api", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def echo(payload: bytes = b"hello, echo") -> bytes:
    """What api's TCP port sends back before the connection closes (b"" when closed unanswered).
    Plaintext: the sidecar's TLS inspector needs a record header's worth of bytes (5) to tell."""
    with socket.create_connection((API, TCP_PORT), timeout=10) as s:
        s.sendall(payload)
        received = b""
        try:
            while len(received) < len(payload):
                chunk = s.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
        return received


ALLOW = {"x-ext-authz": "allow"}
AUTHZ_PATHS = [{"to": [{"operation": {"paths": ["/authz*"]}}]}]


def test_http_authorizer_allows_by_header(ext_mesh: ExtAuthzMesh) -> None:
    ext_mesh.apply("http-authz", AUTHZ_PATHS)
    status, _, body = request("/authz/item", ALLOW)
    assert status == 200
    assert json.loads(body)["headers"][RESULT_HEADER] == "allowed"  # headersToUpstreamOnAllow
    check = ext_mesh.http.checks[-1]
    assert (
        check.path == "/check/authz/item" and check.headers["x-ext-authz"] == "allow"
    )  # pathPrefix, header sent

    status, headers, body = request("/authz/item", {"x-ext-authz": "deny"})
    assert (status, body) == (403, DENIED_BODY)
    assert headers[RESULT_HEADER] == "denied"  # headersToDownstreamOnDeny
    assert request("/authz/item")[0] == 403  # no header at all

    # Over mTLS too.
    assert request("/authz/x", ALLOW, tls=ext_mesh.tls())[0] == 200
    assert request("/authz/x", tls=ext_mesh.tls())[0] == 403


def test_requests_no_custom_rule_selects_never_reach_the_authorizer(ext_mesh: ExtAuthzMesh) -> None:
    ext_mesh.apply("http-authz", AUTHZ_PATHS)
    before = len(ext_mesh.http.checks)
    assert request("/open")[0] == 200  # no x-ext-authz header, and still allowed
    assert request("/open/deeper", {"x-ext-authz": "deny"})[0] == 200  # would be denied if checked
    assert len(ext_mesh.http.checks) == before


def test_grpc_authorizer_checks_http_and_tcp(ext_mesh: ExtAuthzMesh) -> None:
    ext_mesh.apply(
        "grpc-authz", [*AUTHZ_PATHS, {"to": [{"operation": {"ports": [str(TCP_PORT)]}}]}]
    )
    status, _, body = request("/authz/g", ALLOW)
    assert status == 200 and json.loads(body)["headers"][RESULT_HEADER] == "allowed"
    status, headers, body = request("/authz/g")
    assert (status, body, headers[RESULT_HEADER]) == (403, DENIED_BODY, "denied")
    assert ext_mesh.grpc.checks[-1].path == "/authz/g"
    assert request("/open")[0] == 200

    # TCP: the network ext_authz filter asks the same authorizer for each connection.
    ext_mesh.grpc.allow_tcp = True
    assert echo() == b"hello, echo"
    ext_mesh.grpc.allow_tcp = False
    try:
        assert echo() == b""  # closed, unanswered
    finally:
        ext_mesh.grpc.allow_tcp = True
    assert echo(b"hello again") == b"hello again"
    assert [c.allowed for c in ext_mesh.grpc.checks[-3:]] == [
        True,
        False,
        True,
    ]  # one check per connection


def test_fail_open_lets_requests_through_when_the_authorizer_is_down(
    ext_mesh: ExtAuthzMesh,
) -> None:
    ext_mesh.apply("down-open", AUTHZ_PATHS)
    assert request("/authz/anything")[0] == 200


def test_fail_closed_answers_status_on_error_when_the_authorizer_is_down(
    ext_mesh: ExtAuthzMesh,
) -> None:
    ext_mesh.apply("down-closed", AUTHZ_PATHS)
    assert request("/authz/anything", ALLOW)[0] == 503  # statusOnError
    assert request("/open")[0] == 200


def test_an_unknown_provider_denies_what_its_rules_select(ext_mesh: ExtAuthzMesh) -> None:
    ext_mesh.apply("nobody", AUTHZ_PATHS)
    assert request("/authz/x", ALLOW)[:3:2] == (403, RBAC_DENIED)
    assert request("/open")[0] == 200
