"""The agent beside a real Envoy, against a real control plane over TLS: xDS through the
agent's Unix socket with the token from a file (re-read on every connection), readiness and
merged stats on the agent's ports, reconnection when the control plane restarts (Envoy keeps
running), and Envoy stopped with the agent."""

from __future__ import annotations

import functools
import http.server
import json
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import yaml

from controlplane.auth.revocation import revocation_of, revoke
from tests.agent.harness import get, running_agent, write_token
from tests.harness.control_plane import served_control_plane
from tests.harness.ports import free_address, free_port
from tests.harness.wait import wait_for

pytestmark = pytest.mark.envoy
NS = "agent-test"


def _config(egress_ip: str, *services: str) -> str:
    docs = []
    for n, name in enumerate(services):
        docs += [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
             "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9080}]}},
            {"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
             "metadata": {"name": name, "namespace": NS},
             "spec": {"address": f"127.0.91.{n + 10}", "labels": {"app": name}, "serviceAccount": name}},
        ]
    docs.append({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                 "metadata": {"name": "client", "namespace": NS},
                 "spec": {"workloadSelector": {"labels": {"app": "client"}},
                          "egress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "http"},
                                      "bind": egress_ip, "captureMode": "NONE", "hosts": ["./*"]}]}})
    return yaml.safe_dump_all(docs, sort_keys=False)


def _cluster(name: str) -> str:
    return f"outbound|9080||{name}.{NS}.svc.cluster.local"


@pytest.fixture
def setup(tmp_path: Path):
    config = tmp_path / "config"
    config.mkdir()
    egress_ip = free_address("127.0.92", (9080,))
    (config / "mesh.yaml").write_text(_config(egress_ip, "reviews"))
    return tmp_path, config, egress_ip


def _agent(tmp_path: Path, cp, token_file: Path | None = None, credential: list[str] | None = None,
           extra: tuple[str, ...] = ()):
    return running_agent(tmp_path / "agent", pod="client-0", namespace=NS, service_account="client",
                         ip="127.0.92.1", labels="app=client", xds_port=cp.xds_tls_port,
                         root_cert=cp.ca_dir / "root-cert.pem",
                         credential=credential or ["--token-file", str(token_file)], extra=extra)


def test_envoy_gets_its_config_and_certificate_through_the_agent(setup) -> None:
    tmp_path, config, _ = setup
    with served_control_plane(tmp_path, config) as cp:
        token_file = tmp_path / "istio-token"
        token = write_token(token_file, cp.ca_dir, NS, "client")
        with _agent(tmp_path, cp, token_file) as agent:
            wait_for(lambda: _cluster("reviews") in agent.cluster_names(), message="cluster through the agent")
            dump = agent.config_dump()
            # The identity the token proves got its certificate over SDS.
            secrets = [c for c in dump["configs"] if "SecretsConfigDump" in c.get("@type", "")]
            assert "default" in str(secrets)
            # Bootstrap: xDS over the agent's socket, no credential anywhere Envoy shows.
            bootstrap = next(c for c in dump["configs"] if "BootstrapConfigDump" in c["@type"])
            xds = next(c for c in bootstrap["bootstrap"]["static_resources"]["clusters"] if c["name"] == "xds-grpc")
            assert "pipe" in str(xds["load_assignment"])
            for path in ("/config_dump?include_eds", "/server_info", "/clusters", "/stats", "/listeners"):
                assert token not in agent.admin(path)[1], path
            # The token appears in no file that is not mode 0600.
            for path in tmp_path.rglob("*"):
                if path.is_file() and not path.is_symlink() and token in path.read_text(errors="replace"):
                    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            # Merged stats on 15020, readiness on 15021.
            status, body = get(f"http://127.0.0.1:{agent.status_port}/stats/prometheus")
            assert status == 200 and "envoy_server_live" in body
            assert agent.ready()
            envoy_pids = agent.envoy_pids()
            assert len(envoy_pids) == 1
        # The agent stopped: so did its Envoy.
        assert not psutil.pid_exists(envoy_pids[0]) or psutil.Process(envoy_pids[0]).status() == psutil.STATUS_ZOMBIE
        assert get(f"http://127.0.0.1:{agent.admin_port}/ready")[0] == 0


def test_rotated_token_and_control_plane_restart(setup) -> None:
    tmp_path, config, egress_ip = setup
    ports = {"tls": free_port(), "plain": free_port(), "monitoring": free_port()}
    token_file = tmp_path / "istio-token"
    with served_control_plane(tmp_path, config, ports=ports) as cp:
        old_token = write_token(token_file, cp.ca_dir, NS, "client")
        agent_cm = _agent(tmp_path, cp, token_file)
        agent = agent_cm.__enter__()
        cp.kill()  # SIGKILL: nothing is shut down cleanly
    try:
        # The control plane is gone; Envoy keeps serving what it had.
        assert agent.process.poll() is None
        envoy_pid = agent.envoy_pids()
        assert _cluster("reviews") in agent.cluster_names()
        # The kubelet rotates the token; the old one is revoked.
        write_token(token_file, cp.ca_dir, NS, "client")
        revoke(cp.ca_dir, revocation_of(old_token), datetime.now(UTC))
        (config / "mesh.yaml").write_text(_config(egress_ip, "reviews", "ratings"))
        with served_control_plane(tmp_path, config, ports=ports, log_name="controlplane-2.log"):
            # Only the new token is accepted: the new cluster arriving proves it was used.
            wait_for(lambda: _cluster("ratings") in agent.cluster_names(), deadline=45,
                     message="config from the restarted control plane")
            assert agent.envoy_pids() == envoy_pid  # the same Envoy, never restarted
            assert agent.ready()
    finally:
        agent_cm.__exit__(None, None, None)



def test_local_run_mints_a_short_lived_token_per_connection(setup) -> None:
    tmp_path, config, _ = setup
    with served_control_plane(tmp_path, config) as cp, _agent(
        tmp_path, cp, credential=["--ca-dir", str(cp.ca_dir), "--token-ttl", "120"]
    ) as agent:
        wait_for(lambda: _cluster("reviews") in agent.cluster_names(), message="cluster through the agent")
        dump = json.dumps(agent.config_dump())
        assert "authorization" not in dump and "Bearer" not in dump


def test_stats_port_merges_the_apps_metrics(setup) -> None:
    tmp_path, config, _ = setup
    site = tmp_path / "site"
    site.mkdir()
    (site / "metrics").write_text("# TYPE app_orders_total counter\napp_orders_total 7\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        with served_control_plane(tmp_path, config) as cp:
            token_file = tmp_path / "istio-token"
            write_token(token_file, cp.ca_dir, NS, "client")
            extra = ("--app-metrics-port", str(app.server_address[1]), "--app-metrics-path", "/metrics")
            with _agent(tmp_path, cp, token_file, extra=extra) as agent:
                status, body = get(f"http://127.0.0.1:{agent.status_port}/stats/prometheus")
    finally:
        app.shutdown()
        app.server_close()
    assert status == 200
    assert "envoy_server_live" in body and "app_orders_total 7" in body


def test_envoy_stops_when_the_agent_is_killed(setup) -> None:
    tmp_path, config, _ = setup
    with served_control_plane(tmp_path, config) as cp:
        token_file = tmp_path / "istio-token"
        write_token(token_file, cp.ca_dir, NS, "client")
        with _agent(tmp_path, cp, token_file) as agent:
            envoy_pids = agent.envoy_pids()
            assert envoy_pids
            agent.process.kill()  # no chance to stop Envoy itself
            agent.process.wait()
            wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                     for p in envoy_pids), deadline=15, message="Envoy gone with its agent")


def test_a_gateway_pod_runs_envoy_as_a_router(tmp_path: Path) -> None:
    """The injected gateway's agent (``--kind router``, as Istio's gateway template runs
    ``proxy router``): its Envoy is a router, and the Gateway selecting its labels routes a
    request through it to the app."""
    from controlplane.inject import InjectorSettings, inject_documents
    from tests.gateway.support import get as gateway_get
    from tests.harness.upstream import HttpUpstream

    injected = inject_documents([{
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ingress", "namespace": NS},
        "spec": {"selector": {"matchLabels": {"istio": "ingress"}}, "template": {
            "metadata": {"labels": {"istio": "ingress"}, "annotations": {"inject.istio.io/templates": "gateway"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": "auto"}]}}},
    }], InjectorSettings())[0]["spec"]["template"]["spec"]
    assert "initContainers" not in injected  # nothing captured
    args = injected["containers"][0]["args"]
    kind = args[args.index("--kind") + 1]
    assert kind == "router"

    config = tmp_path / "config"
    config.mkdir()
    address = free_address("127.0.93", (8080,))
    with HttpUpstream("app") as app:
        (config / "gateway.yaml").write_text(yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": NS},
             "spec": {"selector": {"app": "app"}, "ports": [{"name": "http", "port": 9080}]}},
            {"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry", "metadata": {"name": "app", "namespace": NS},
             "spec": {"address": "127.0.0.1", "labels": {"app": "app"}, "ports": {"http": app.port}}},
            {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "ingress", "namespace": NS},
             "spec": {"selector": {"istio": "ingress"},
                      "servers": [{"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}},
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "app", "namespace": NS},
             "spec": {"hosts": ["*"], "gateways": ["ingress"],
                      "http": [{"route": [{"destination": {"host": "app", "port": {"number": 9080}}}]}]}},
        ], sort_keys=False))
        with served_control_plane(tmp_path, config) as cp, running_agent(
            tmp_path / "agent", pod="ingress-0", namespace=NS, service_account="ingress", ip=address,
            labels="istio=ingress", xds_port=cp.xds_tls_port, root_cert=cp.ca_dir / "root-cert.pem",
            credential=["--ca-dir", str(cp.ca_dir)], extra=("--kind", kind),
        ) as agent:
            node = next(c for c in agent.config_dump()["configs"] if "BootstrapConfigDump" in c["@type"])
            assert node["bootstrap"]["node"]["id"].startswith("router~")
            _, headers, _ = wait_for(
                lambda: (r := gateway_get(address, 8080, "app.example.com", "/"))[0] == 200 and r,
                message="a request through the gateway pod's router",
            )
            assert headers["x-upstream"] == "app"
