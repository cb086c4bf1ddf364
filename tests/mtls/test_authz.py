"""AuthorizationPolicy enforced by real Envoy sidecars over mTLS, configured by
`controlplane serve` from a watched folder.

Workloads (own control plane, own addresses 127.0.73.x, module scope): ``web`` (HTTP app on
9080) and ``db`` (a TCP echo on 5432), each behind its sidecar; two client sidecars,
``client`` and ``other``, each with its own service account, that reach both by name through
their egress listeners (9080 HTTP, 5432 TCP) with auto mTLS. Each test writes its policies,
waits until the server's Envoy holds exactly those RBAC policies (by Istio's names), then
checks what callers get.

The RBAC configs come over ECDS (``<namespace>.rbac-*`` for HTTP, ``<namespace>.tcp-rbac-*``
for TCP): once the mesh has a policy, changing policies changes those configs and never the
listeners, so Envoy drains nothing and the next request on every open connection already
gets the new decision.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest

from controlplane.ca import load_ca_folder
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.echo import EchoServer
from tests.harness.envoy import EnvoyProcess
from tests.harness.wait import wait_for
from tests.mtls.mesh import NAMESPACE, PORT, bound_server_docs, dump, pod, sidecar, tls_context
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

CLIENT, OTHER, WEB, DB = "127.0.73.1", "127.0.73.2", "127.0.73.11", "127.0.73.12"
DB_PORT = 5432
CALLERS = {"client": CLIENT, "other": OTHER}
DENIED = b"RBAC: access denied"
_POLICY_NAME = re.compile(r"ns\[[^\]]*\]-policy\[[^\]]*\]-rule\[\d+\]")


def _doc(kind: str, api: str, name: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, **body}


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
        server's Envoy holds exactly their RBAC policies (dry-run ones as shadow rules)."""
        docs = []
        for app, policies in (("web", web), ("db", db)):
            for p in policies:
                docs.append({**p, "spec": {"selector": {"matchLabels": {"app": app}}, **p["spec"]}})
        (self.config / "authz.yaml").write_text(dump(docs) if docs else "")
        for app, policies in (("web", web), ("db", db)):
            expected = {_held_name(p, i) for p in policies for i in range(max(1, len(p["spec"].get("rules", []))))}
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


def _held_name(p: dict[str, Any], rule: int) -> str:
    name = f"ns[{NAMESPACE}]-policy[{p['metadata']['name']}]-rule[{rule}]"
    dry_run = p["metadata"].get("annotations", {}).get("istio.io/dry-run") == "true"
    return f"dry-run:{name}" if dry_run else name


def _active_policies(envoy: EnvoyProcess) -> set[str]:
    """The RBAC policies an Envoy holds in the filter configs it got over ECDS (dry-run ones,
    its shadow rules, as ``dry-run:<name>``); ``<warming>`` while a listener still warms."""
    listeners = json.loads(envoy.admin("/config_dump?resource=dynamic_listeners"))
    if any("warming_state" in entry for entry in listeners.get("configs", [])):
        return {"<warming>"}
    names: set[str] = set()
    for entry in json.loads(envoy.admin("/config_dump?resource=ecds_filters")).get("configs", []):
        config = entry.get("ecds_filter", {}).get("typed_config", {})
        names |= set(_POLICY_NAME.findall(json.dumps(config.get("rules", {}))))
        names |= {f"dry-run:{n}" for n in _POLICY_NAME.findall(json.dumps(config.get("shadow_rules", {})))}
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
        docs = bound_server_docs("web", WEB, PORT, "HTTP", web.port) + bound_server_docs("db", DB, DB_PORT, "TCP", echo.port)
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


class KeepAliveTraffic:
    """``client`` calling ``web`` in a loop over one kept-alive connection to its sidecar (whose
    pooled mTLS connection to web's sidecar is reused too), alternating two paths. Records every
    answer, and any error or new connection, which an allowed caller must never see."""

    PATHS = ("/", "/blocked")

    def __init__(self, caller: str) -> None:
        self.conn = http.client.HTTPConnection(CALLERS[caller], PORT, timeout=10)
        self.results: list[tuple[str, int, bytes]] = []
        self.problems: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.conn.connect()
        sock = self.conn.sock
        while not self.stop.is_set():
            for path in self.PATHS:
                try:
                    self.conn.request("GET", path, headers={"host": "web"})
                    response = self.conn.getresponse()
                    body = response.read()
                except Exception as error:  # noqa: BLE001 - recorded, asserted on
                    self.problems.append(f"{path}: {error!r}")
                    return
                self.results.append((path, response.status, body))
                if response.will_close or self.conn.sock is not sock:
                    self.problems.append(f"{path}: the connection was closed ({response.status})")
                    return

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.conn.close()

    def latest(self, path: str, since: int) -> int | None:
        seen = [status for p, status, _ in self.results[since:] if p == path]
        return seen[-1] if seen else None


def test_policies_changed_under_traffic_apply_to_open_connections_without_a_listener_change(
    authz_mesh: AuthzMesh,
) -> None:
    """Five changes while ``client`` calls ``web`` over one kept-alive connection: a DENY on
    another path, the DENY switched to dry-run and back, the ALLOW switched to ``other`` only
    and back. Each applies to that open connection within a few seconds, no request ever fails
    (every answer is the one the policies in force give), and web's Envoy never updates or
    drains a listener: only the RBAC configs it gets over ECDS change."""
    allow_client = policy("caller-only", {"rules": [{"from": [{"source": {"principals": [principal("client")]}}]}]})
    allow_other = policy("caller-only", {"rules": [{"from": [{"source": {"principals": [principal("other")]}}]}]})
    block = {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/blocked"]}}]}]}
    deny_blocked = policy("block", block)
    dry_run_blocked = policy("block", block, annotations={"istio.io/dry-run": "true"})
    authz_mesh.apply(web=[allow_client])  # the mesh's listeners carry the RBAC filters from here
    web_envoy = authz_mesh.envoys["web"]
    assert web_envoy.process is not None
    pid = web_envoy.process.pid

    def listener_stats() -> tuple[int, int, int]:
        """Listener updates, in-place filter chain updates, and connections web's inbound
        HTTP chains closed (none may close: open connections stay open)."""
        return (web_envoy.stat("listener_manager.lds.update_success") or 0,
                web_envoy.stat("listener_manager.listener_in_place_updated") or 0,
                web_envoy.stat(f"http.inbound_0.0.0.0_{PORT}.downstream_cx_destroy") or 0)

    before = listener_stats()
    draining: list[int] = []
    # (policies on web, what client gets on "/" and on "/blocked" once they apply)
    phases = [
        ([allow_client, deny_blocked], {"/": 200, "/blocked": 403}),
        ([allow_client, dry_run_blocked], {"/": 200, "/blocked": 200}),
        ([allow_client, deny_blocked], {"/": 200, "/blocked": 403}),
        ([allow_other, deny_blocked], {"/": 403, "/blocked": 403}),
        ([allow_client, deny_blocked], {"/": 200, "/blocked": 403}),
    ]
    starts: list[int] = []
    with KeepAliveTraffic("client") as traffic:
        wait_for(lambda: len(traffic.results) >= 20 or traffic.problems, message="traffic flowing")
        for policies, expected in phases:
            starts.append(len(traffic.results))
            shadow_before = web_stat(authz_mesh, "istio_dry_run_deny_.shadow_denied")
            authz_mesh.apply(web=policies)
            for path, status in expected.items():
                start = len(traffic.results)
                wait_for(lambda path=path, status=status, start=start: traffic.problems or traffic.latest(path, start) == status,
                         deadline=10.0, message=f"{path} -> {status} on the open connection")
                draining.append(web_envoy.stat("listener_manager.total_filter_chains_draining") or 0)
            assert not traffic.problems, traffic.problems
            if policies[1] is dry_run_blocked:  # evaluated, counted, not enforced
                assert web_stat(authz_mesh, "istio_dry_run_deny_.shadow_denied") > shadow_before
            if policies[0] is allow_other:
                assert call("other")[0] == 200
        starts.append(len(traffic.results))
    assert not traffic.problems, traffic.problems
    # Every answer is what the policies in force give: before a change the previous phase's,
    # then (once the new config reached the worker) the new phase's, never anything else.
    results = traffic.results
    initial = {"/": 200, "/blocked": 200}
    assert all(s == initial[p] for p, s, _ in results[: starts[0]]), results[: starts[0]]
    previous = initial
    for (_, expected), begin, end in zip(phases, starts[:-1], starts[1:], strict=True):
        for path in KeepAliveTraffic.PATHS:
            seen = [s for p, s, _ in results[begin:end] if p == path]
            switched = next((i for i, s in enumerate(seen) if s != previous[path]), len(seen))
            assert set(seen[switched:]) <= {expected[path]}, (path, previous[path], expected[path], seen)
        previous = expected
    assert all(body == DENIED for _, s, body in results if s == 403)
    # No listener was updated or drained, no connection closed, and Envoy never restarted.
    assert listener_stats() == before
    assert set(draining) == {0}
    assert web_envoy.alive() and web_envoy.process.pid == pid
