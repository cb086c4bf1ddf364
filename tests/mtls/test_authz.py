"""AuthorizationPolicy enforced by real Envoy sidecars over mTLS, configured by
`controlplane serve` from a watched folder.

Workloads (own control plane, own addresses 127.0.73.x, module scope): ``web`` (HTTP app on
9080) and ``db`` (a TCP echo on 5432), each behind its sidecar; two client sidecars,
``client`` and ``other``, each with its own service account, that reach both by name through
their egress listeners (9080 HTTP, 5432 TCP) with auto mTLS. Each test writes its policies,
waits until the server's Envoy holds exactly those RBAC policies (by Istio's names), then
checks what callers get.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest

from controlplane.ca import load_ca_folder
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.envoy import EnvoyProcess
from tests.harness.wait import wait_for
from tests.mtls.mesh import NAMESPACE, PORT, dump, pod, sidecar, tls_context
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

CLIENT, OTHER, WEB, DB = "127.0.73.1", "127.0.73.2", "127.0.73.11", "127.0.73.12"
DB_PORT = 5432
CALLERS = {"client": CLIENT, "other": OTHER}
DENIED = b"RBAC: access denied"
_POLICY_NAME = re.compile(r"ns\[[^\]]*\]-policy\[[^\]]*\]-rule\[\d+\]")


class EchoServer:
    """A loopback TCP app that sends back what it receives."""

    class _Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(4096):
                self.request.sendall(data)

    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _doc(kind: str, api: str, name: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, **body}


def _server(name: str, address: str, port: int, protocol: str, app_port: int) -> list[dict[str, Any]]:
    port_name = "http" if protocol == "HTTP" else "tcp-db"
    labels = {"app": name}
    slice_ = _doc("EndpointSlice", "discovery.k8s.io/v1", f"{name}-1", addressType="IPv4",
                  ports=[{"name": port_name, "port": port}],
                  endpoints=[{"addresses": [address], "targetRef": {"kind": "Pod", "name": f"{name}-0", "namespace": NAMESPACE}}])
    slice_["metadata"]["labels"] = {"kubernetes.io/service-name": name}
    return [
        _doc("Service", "v1", name, spec={"selector": labels, "ports": [{"name": port_name, "port": port}]}),
        pod(f"{name}-0", labels, name),
        slice_,
        _doc("Sidecar", "networking.istio.io/v1", name, spec={
            "workloadSelector": {"labels": labels},
            "ingress": [{"port": {"number": port, "protocol": protocol, "name": port_name},
                         "captureMode": "NONE", "defaultEndpoint": f"127.0.0.1:{app_port}"}],
            "egress": [{"hosts": ["~/*"]}],
        }),
    ]  # fmt: skip


def _caller(name: str, address: str) -> dict[str, Any]:
    return _doc("Sidecar", "networking.istio.io/v1", name, spec={
        "workloadSelector": {"labels": {"app": name}},
        "egress": [
            {"port": {"number": PORT, "protocol": "HTTP", "name": "http"}, "bind": address, "captureMode": "NONE", "hosts": ["./*"]},
            {"port": {"number": DB_PORT, "protocol": "TCP", "name": "tcp"}, "bind": address, "captureMode": "NONE", "hosts": ["./*"]},
        ],
    })  # fmt: skip


@dataclass
class AuthzMesh:
    cp: ServedControlPlane
    config: Path
    envoys: dict[str, EnvoyProcess]
    web: FastUpstream
    ca: Any

    def apply(self, *, web: list[dict[str, Any]] = (), db: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        """Write the policies for ``web`` and ``db`` (selectors added) and wait until each
        server's Envoy holds exactly their RBAC policies."""
        docs = []
        for app, policies in (("web", web), ("db", db)):
            for p in policies:
                docs.append({**p, "spec": {"selector": {"matchLabels": {"app": app}}, **p["spec"]}})
        (self.config / "authz.yaml").write_text(dump(docs) if docs else "")
        for app, policies in (("web", web), ("db", db)):
            expected = {f"ns[{NAMESPACE}]-policy[{p['metadata']['name']}]-rule[{i}]"
                        for p in policies for i in range(max(1, len(p["spec"].get("rules", []))))}
            envoy = self.envoys[app]
            wait_for(lambda envoy=envoy, expected=expected: _active_policies(envoy) == expected,
                     message=f"{app}'s Envoy holding {sorted(expected)}")
            # Connections accepted before the change finish on the old filter chain, which
            # Envoy drains (--drain-time-s): the new RBAC holds for every request after that.
            wait_for(lambda envoy=envoy: envoy.stat("listener_manager.total_filter_chains_draining") == 0,
                     message=f"{app}'s old filter chains drained")

    def tls(self, namespace: str, service_account: str) -> Any:
        issued = self.ca.issue_workload(namespace, service_account)
        return tls_context(issued.chain_pem, issued.private_key_pem, self.ca.bundle.pem)


def _active_policies(envoy: EnvoyProcess) -> set[str]:
    dump_ = json.loads(envoy.admin("/config_dump?resource=dynamic_listeners"))
    names: set[str] = set()
    for entry in dump_.get("configs", []):
        if "active_state" in entry and "warming_state" not in entry:
            names |= set(_POLICY_NAME.findall(json.dumps(entry["active_state"])))
        elif "warming_state" in entry:
            return {"<warming>"}
    return names


def policy(name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    doc = _doc("AuthorizationPolicy", "security.istio.io/v1", name, spec=spec)
    if annotations:
        doc["metadata"]["annotations"] = annotations
    return doc


def principal(sa: str, namespace: str = NAMESPACE) -> str:
    return f"cluster.local/ns/{namespace}/sa/{sa}"


@pytest.fixture(scope="module")
def authz_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthzMesh]:
    workdir: Path = tmp_path_factory.mktemp("authz")
    config = workdir / "config"
    config.mkdir()
    with contextlib.ExitStack() as stack:
        web = stack.enter_context(FastUpstream("web"))
        echo = stack.enter_context(EchoServer())
        docs = _server("web", WEB, PORT, "HTTP", web.port) + _server("db", DB, DB_PORT, "TCP", echo.port)
        docs += [pod(f"{c}-0", {"app": c}, c) for c in CALLERS] + [_caller(c, a) for c, a in CALLERS.items()]
        (config / "mesh.yaml").write_text(dump(docs))
        cp = stack.enter_context(served_control_plane(workdir, config))
        envoys = {
            name: sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name=name, address=address, service_account=name,
                          labels={"app": name})
            for name, address in {**CALLERS, "web": WEB, "db": DB}.items()
        }  # fmt: skip
        for envoy in envoys.values():
            stack.enter_context(envoy)
        for envoy in envoys.values():
            envoy.wait_ready()
        mesh = AuthzMesh(cp, config, envoys, web, load_ca_folder(cp.ca_dir, "cluster.local"))
        for caller in CALLERS:  # both callers reach both servers before any policy
            wait_for(lambda c=caller: call(c)[0] == 200, message=f"{caller} -> web")
            wait_for(lambda c=caller: echo_through(c) == b"ping", message=f"{caller} -> db")
        yield mesh


# --- callers ---------------------------------------------------------------------------------


def call(caller: str, path: str = "/", method: str = "GET") -> tuple[int, bytes]:
    """An HTTP request to ``web`` through the caller's sidecar."""
    conn = http.client.HTTPConnection(CALLERS[caller], PORT, timeout=10)
    try:
        conn.request(method, path, headers={"host": "web"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def direct(path: str = "/", tls: Any = None) -> tuple[int, bytes]:
    """An HTTP request straight to web's sidecar: plaintext, or mTLS with ``tls``."""
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection(WEB, PORT, timeout=10)
    else:
        conn = http.client.HTTPSConnection(WEB, PORT, timeout=10, context=tls)
    try:
        conn.request("GET", path, headers={"host": "web"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def echo_through(caller: str, payload: bytes = b"ping") -> bytes:
    """Send ``payload`` to ``db`` through the caller's sidecar; what comes back before the
    connection closes (b"" when it is closed unanswered)."""
    with socket.create_connection((CALLERS[caller], DB_PORT), timeout=10) as s:
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


def web_stat(mesh: AuthzMesh, name: str) -> int:
    return mesh.envoys["web"].stat(f"http.inbound_0.0.0.0_{PORT}.rbac.{name}") or 0


# --- tests -----------------------------------------------------------------------------------


def test_deny_all_answers_403_rbac_access_denied(authz_mesh: AuthzMesh) -> None:
    authz_mesh.apply(web=[policy("allow-nothing", {})])
    before = authz_mesh.web.paths["/"]
    for caller in CALLERS:
        assert call(caller) == (403, DENIED)
    assert direct(tls=authz_mesh.tls(NAMESPACE, "direct")) == (403, DENIED)
    assert authz_mesh.web.paths["/"] == before  # the app never saw them
    assert web_stat(authz_mesh, "denied") >= 3


def test_allow_get_from_one_service_account(authz_mesh: AuthzMesh) -> None:
    authz_mesh.apply(web=[policy("client-may-get", {"rules": [{
        "from": [{"source": {"principals": [principal("client")]}}],
        "to": [{"operation": {"methods": ["GET"]}}],
    }]})])
    status, body = call("client")
    assert status == 200 and json.loads(body)["name"] == "web"
    assert call("other") == (403, DENIED)
    assert call("client", method="POST") == (403, DENIED)  # GET only


def test_deny_on_a_path(authz_mesh: AuthzMesh) -> None:
    authz_mesh.apply(web=[policy("no-admin", {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]})])
    assert call("client", "/admin/users") == (403, DENIED)
    assert call("other", "/admin") == (403, DENIED)
    assert call("client", "/status/200")[0] == 200
    assert authz_mesh.web.paths["/admin"] == 0


def test_a_denied_path_is_not_reached_through_dot_segments(authz_mesh: AuthzMesh) -> None:
    authz_mesh.apply(web=[policy("no-admin", {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]})])
    assert call("client", "/./admin")[0] == 403
    assert call("client", "/x/../admin")[0] == 403


def test_namespace_rule(authz_mesh: AuthzMesh) -> None:
    authz_mesh.apply(web=[policy("same-namespace", {"rules": [{"from": [{"source": {"namespaces": [NAMESPACE]}}]}]})])
    assert call("client")[0] == 200 and call("other")[0] == 200
    assert direct(tls=authz_mesh.tls(NAMESPACE, "anyone"))[0] == 200
    assert direct(tls=authz_mesh.tls("bar", "client")) == (403, DENIED)  # another namespace
    assert direct() == (403, DENIED)  # plaintext (PERMISSIVE): no identity to match


def test_tcp_port_allowed_for_one_principal(authz_mesh: AuthzMesh) -> None:
    denied_before = authz_mesh.envoys["db"].stat("tcp.rbac.denied") or 0
    authz_mesh.apply(db=[policy("db-client-only", {"rules": [{
        "from": [{"source": {"principals": [principal("client")]}}],
        "to": [{"operation": {"ports": [str(DB_PORT)]}}],
    }]})])
    assert echo_through("client") == b"ping"
    assert echo_through("other") == b""  # closed, unanswered
    assert (authz_mesh.envoys["db"].stat("tcp.rbac.denied") or 0) > denied_before
    assert echo_through("client", b"still here") == b"still here"


def test_dry_run_counts_and_never_blocks(authz_mesh: AuthzMesh) -> None:
    before = web_stat(authz_mesh, "istio_dry_run_deny_.shadow_denied")
    authz_mesh.apply(web=[policy("try-deny", {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/try"]}}]}]},
                                 annotations={"istio.io/dry-run": "true"})])
    assert call("other", "/try")[0] == 200
    assert web_stat(authz_mesh, "istio_dry_run_deny_.shadow_denied") == before + 1


def test_a_policy_changed_under_traffic_applies_without_restart(authz_mesh: AuthzMesh) -> None:
    """Two changes while ``client`` calls in a loop: a DENY on another path (client stays
    allowed), then an ALLOW for ``other`` only (client refused from then on). No allowed request
    is ever refused, each change applies without restarting Envoy.

    Envoy applies a listener change in place and drains the old filter chain: connections
    accepted before the change keep the old RBAC until the drain time ends, then Envoy closes
    them. A request in flight on such a connection at that instant fails with 503
    ``connection termination`` at the caller (Istio's sidecars behave the same); there is one
    such connection here, so at most one per change."""
    allow = policy("client-only", {"rules": [{"from": [{"source": {"principals": [principal("client")]}}]}]})
    authz_mesh.apply(web=[allow])
    web_envoy = authz_mesh.envoys["web"]
    assert web_envoy.process is not None
    pid, updates = web_envoy.process.pid, web_envoy.stat("listener_manager.listener_in_place_updated") or 0
    results: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            results.append(call("client", "/status/200"))

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        wait_for(lambda: len(results) >= 20, message="traffic flowing")
        authz_mesh.apply(web=[allow, policy("block", {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/blocked"]}}]}]})])
        assert call("client", "/blocked") == (403, DENIED)
        still_allowed = len(results)
        authz_mesh.apply(web=[policy("other-only", {"rules": [{"from": [{"source": {"principals": [principal("other")]}}]}]})])
        assert call("client")[0] == 403 and call("other")[0] == 200
        wait_for(lambda: any(status == 403 for status, _ in results[-20:]), message="the loop refused")
    finally:
        stop.set()
        worker.join(timeout=30)
    statuses = [status for status, _ in results]
    assert all(s == 200 or (s == 503 and b"connection termination" in b) for s, b in results[:still_allowed])
    decided = [s for s in statuses if s != 503]
    first_refusal = decided.index(403)
    assert set(decided[:first_refusal]) == {200} and set(decided[first_refusal:]) == {403}
    drained = [b for s, b in results if s == 503]
    assert len(drained) <= 2 and all(b"connection termination" in b for b in drained)
    assert web_envoy.alive() and web_envoy.process is not None and web_envoy.process.pid == pid
    assert (web_envoy.stat("listener_manager.listener_in_place_updated") or 0) >= updates + 2
