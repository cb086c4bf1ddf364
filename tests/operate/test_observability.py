"""The monitoring port while real Envoys connect, accept and reject config through a served
control plane: /metrics, the debug endpoints, proxy-status, and the logs."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import grpc
import pytest

from controlplane.auth import local_token_issuer
from controlplane.cli import main as cli
from tests.harness.wait import wait_for
from tests.operate.mesh import (
    EGRESS,
    OperatedMesh,
    fetch_workload_secret,
    mesh_yaml,
    operated_mesh,
    port_taken,
    request_certificate,
)

pytestmark = pytest.mark.envoy

ALPHA, BETA = "alpha-0.default", "beta-0.default"
ENDPOINTS = (
    "/metrics",
    "/healthz/ready",
    "/debug",
    "/debug/syncz",
    "/debug/configz",
    "/debug/push_status",
    f"/debug/config_dump?proxyID={ALPHA}",
    f"/debug/config_dump?proxyID={BETA}",
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatedMesh]:
    with operated_mesh(tmp_path_factory.mktemp("observability"), "--log-format", "json") as m:
        yield m


def test_metrics_count_proxies_pushes_certificates_and_the_process(mesh: OperatedMesh) -> None:
    m = mesh.metrics()

    def value(name: str, **labels: str) -> float:
        return m.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("pilot_xds", version="v3") == 2
    for xds_type in ("cds", "eds", "lds", "rds"):
        assert value("pilot_xds_pushes", type=xds_type) >= 2, xds_type
        assert value("pilot_total_xds_rejects", type=xds_type) == 0
        assert value("pilot_xds_config_size_bytes_count", type=xds_type) >= 2, xds_type
    assert value("pilot_xds_config_size_bytes_sum", type="cds") > 0
    # Each proven identity got its SVID: one issuance per service account.
    assert value("citadel_server_success_cert_issuance_count") >= 2
    assert value("pilot_services") == 2
    assert value("pilot_k8s_reg_events", type="Service", event="add") == 2
    assert value("pilot_k8s_reg_events", type="Sidecar", event="add") == 2
    assert value("pilot_xds_push_time_count", type="full") >= 1
    assert value("process_resident_memory_bytes") > 0
    assert value("process_cpu_seconds_total") > 0
    # Histogram buckets resolve sub-second pushes.
    assert ("pilot_xds_push_time_bucket", (("le", "0.005"), ("type", "full"))) in m


def test_csr_requests_are_counted_and_failures_told_apart(mesh: OperatedMesh) -> None:
    before = mesh.metrics()
    token = local_token_issuer(mesh.cp.ca_dir).mint("default", "alpha")
    assert request_certificate(mesh.cp, "alpha", token) == grpc.StatusCode.OK
    assert request_certificate(mesh.cp, "alpha", "not-a-token") == grpc.StatusCode.UNAUTHENTICATED
    after = mesh.metrics()

    def grew(name: str) -> float:
        return after.get((name, ()), 0.0) - before.get((name, ()), 0.0)

    assert grew("citadel_server_csr_count") == 2
    assert grew("citadel_server_success_cert_issuance_count") == 1
    assert grew("citadel_server_authentication_failure_count") == 1


def test_syncz_shows_identity_and_what_each_proxy_acked(mesh: OperatedMesh) -> None:
    syncz = mesh.syncz()
    assert set(syncz) == {ALPHA, BETA}
    alpha = syncz[ALPHA]
    assert alpha["node_id"] == mesh.envoys["alpha"].node_id
    assert alpha["spiffe_id"] == "spiffe://cluster.local/ns/default/sa/alpha"
    admin_port = mesh.envoys["alpha"].admin_url.rsplit(":", 1)[1]
    assert alpha["admin_address"] == f"127.0.0.1:{admin_port}"
    for type_name in ("CDS", "EDS", "LDS", "RDS"):
        state = alpha["types"][type_name]
        assert state["state"] == "SYNCED"
        assert state["version_acked"] == state["version_sent"]
        assert state["acked_at"] >= state["sent_at"]
        assert state["last_nack"] is None
    # What syncz says was ACKed is what the Envoy runs.
    envoy_clusters = mesh.envoys["alpha"].config_dump("dynamic_active_clusters")
    versions = {c["version_info"] for c in envoy_clusters["configs"]}
    assert versions == {alpha["types"]["CDS"]["version_acked"]}


def test_config_dump_is_what_the_proxy_runs(mesh: OperatedMesh) -> None:
    ours = mesh.get_json(f"/debug/config_dump?proxyID={ALPHA}")
    clusters = next(c for c in ours["configs"] if c["@type"].endswith("ClustersConfigDump"))
    our_names = {e["cluster"]["name"] for e in clusters["dynamic_active_clusters"]}
    assert our_names == mesh.envoys["alpha"].active_cluster_names()
    listeners = next(c for c in ours["configs"] if c["@type"].endswith("ListenersConfigDump"))
    assert {e["name"] for e in listeners["dynamic_listeners"]} == mesh.envoys[
        "alpha"
    ].active_listener_names()
    # The node id, pod.namespace and pod name all name the same proxy; unknown ones are 404.
    node_id = mesh.envoys["alpha"].node_id
    assert mesh.get_json(f"/debug/config_dump?proxyID={node_id}") == ours
    assert mesh.get_json("/debug/config_dump?proxyID=alpha-0") == ours
    assert mesh.cp.get("/debug/config_dump?proxyID=nobody-0.default")[0] == 404
    configz = mesh.get_json("/debug/configz")
    assert configz["counts"]["Sidecar"] == 2 and configz["errors"] == []


def test_no_key_material_in_any_endpoint_or_log(mesh: OperatedMesh) -> None:
    secret = fetch_workload_secret(mesh.cp, "alpha")
    key_pem = secret.tls_certificate.private_key.inline_bytes
    assert b"PRIVATE KEY" in key_pem  # the probe really holds the key
    body = b"".join(line for line in key_pem.splitlines() if not line.startswith(b"-----"))
    forbidden = {
        "PRIVATE KEY",
        key_pem.decode(),
        body.decode(),
        base64.b64encode(key_pem).decode(),
        body[:40].decode(),  # any part of the key's base64 text
    }
    outputs = {path: mesh.cp.get(path)[1] for path in ENDPOINTS}
    # The secrets are in our view of the proxy (redacted), so the check is not vacuous.
    dump = json.loads(outputs[f"/debug/config_dump?proxyID={ALPHA}"])
    secrets = next(c for c in dump["configs"] if c["@type"].endswith("SecretsConfigDump"))
    names = {s["name"] for s in secrets["dynamic_active_secrets"]}
    assert names == {"default", "ROOTCA"}
    outputs["log"] = mesh.cp.log()
    for where, text in outputs.items():
        for needle in forbidden:
            assert needle not in text, f"key material in {where}"


def test_an_input_change_is_counted_and_proxies_converge(mesh: OperatedMesh) -> None:
    before = mesh.metrics()
    mesh.write_config(mesh_yaml(extra_alpha_endpoint=True))

    def converged_twice() -> bool:
        return mesh.metric("pilot_proxy_convergence_time_count") >= (
            before.get(("pilot_proxy_convergence_time_count", ()), 0) + 2
        )

    wait_for(converged_twice, message="both proxies converged on the new endpoint")
    assert mesh.metric("pilot_k8s_reg_events", type="WorkloadEntry", event="add") == 3
    assert mesh.metric("pilot_debounce_time_count") > before.get(
        ("pilot_debounce_time_count", ()), 0
    )
    push_status = mesh.get_json("/debug/push_status")
    last = push_status["recent_pushes"][-1]
    assert last["changed_groups"] == 2 and last["debounce_seconds"] is not None
    wait_for(mesh.all_synced, message="both SYNCED after the change")
    for name in ("alpha", "beta"):
        hosts = mesh.envoys[name].cluster_hosts("outbound|9080||alpha.default.svc.cluster.local")
        assert "127.0.60.11:8080" in hosts


def test_rejected_input_is_shown_and_counted(mesh: OperatedMesh) -> None:
    bad = mesh.config_file.with_name("bad.yaml")
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: broken, namespace: default}\nspec: {http: [{route: []}]}\n"
    )
    try:
        wait_for(
            lambda: mesh.get_json("/debug/configz")["errors"], message="configz shows the error"
        )
        (error,) = mesh.get_json("/debug/configz")["errors"]
        assert "bad.yaml" in error and "broken" in error
        assert mesh.metric("controlplane_input_errors") == 1
    finally:
        bad.unlink()
    wait_for(lambda: not mesh.get_json("/debug/configz")["errors"], message="error gone")
    assert mesh.metric("controlplane_input_errors") == 0


def test_logs_are_json_with_one_line_per_push(mesh: OperatedMesh) -> None:
    def entries() -> list[dict[str, str]]:
        lines = [line for line in mesh.cp.log().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]  # every line is one JSON object

    def push_lines() -> int:
        return sum(1 for e in entries() if re.match(r"push (full|endpoints):", e["msg"]))

    # One summary line per push (waiting out a push that may still be on its way).
    wait_for(
        lambda: push_lines() == mesh.get_json("/debug/push_status")["pushes"],
        message="one log line per push",
    )
    assert all({"time", "level", "scope", "msg"} <= set(e) for e in entries())
    # Never one line per resource at INFO: no cluster or listener names in INFO messages.
    info = [e["msg"] for e in entries() if e["level"] == "info"]
    assert not [m for m in info if "outbound|" in m or "inbound|" in m]


def test_a_rejected_config_shows_as_nack_then_recovers(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    rejects_before = mesh.metric("pilot_total_xds_rejects", type="lds")
    with port_taken(EGRESS["beta"], 0) as taken:
        port = taken.getsockname()[1]
        mesh.write_config(mesh_yaml(beta_egress_port=port))
        wait_for(lambda: mesh.states(BETA).get("LDS") == "NACK", message="beta NACKs the listener")
        beta = mesh.syncz()[BETA]["types"]["LDS"]
        assert "Address already in use" in beta["last_nack"]["error"]
        assert beta["version_acked"] != beta["version_sent"]  # it runs its previous listeners
        assert mesh.states(ALPHA)["LDS"] == "SYNCED"
        assert mesh.metric("pilot_total_xds_rejects", type="lds") == rejects_before + 1
        assert mesh.envoys["beta"].stat("listener_manager.lds.update_rejected") == 1
        nacks = mesh.get_json("/debug/push_status")["recent_nacks"]
        assert [n["proxy"] for n in nacks] == [BETA]

        capsys.readouterr()
        assert cli(["proxy-status", "--monitoring-address", mesh.monitoring_address]) == 0
        out = capsys.readouterr().out
        beta_row = next(line for line in out.splitlines() if line.startswith(BETA))
        assert re.search(r"SYNCED \(\d+[smhd]\)\s+NACK \(\d+[smhd]\)", beta_row), (
            beta_row
        )  # CDS, LDS
        assert f"{BETA} LDS NACK" in out and "Address already in use" in out

    # Released and reverted: a new version, accepted.
    mesh.write_config(mesh_yaml())
    wait_for(mesh.all_synced, message="beta SYNCED again")
    capsys.readouterr()
    assert cli(["proxy-status", "--monitoring-address", mesh.monitoring_address]) == 0
    out = capsys.readouterr().out
    assert (
        "NACK" not in out and "STALE" not in out and out.count("SYNCED") >= 8
    )  # 2 proxies x 4+ types
