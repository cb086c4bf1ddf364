"""``controlplane proxy-status``, ``proxy-config`` and ``dashboard`` against a served control
plane with two real Envoys, and ``proxy-config --envoy-admin`` against a live Envoy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from controlplane.cli import main as cli
from tests.harness.ports import free_port
from tests.operate.mesh import OperatedMesh, operated_mesh

pytestmark = pytest.mark.envoy

ALPHA, BETA = "alpha-0.default", "beta-0.default"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatedMesh]:
    with operated_mesh(tmp_path_factory.mktemp("cli")) as m:
        yield m


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(table_text: str) -> list[list[str]]:
    """Table lines split on the 3-space column gap (cells never contain 3 spaces)."""
    lines = table_text.strip().splitlines()
    return [[cell.strip() for cell in line.split("   ") if cell.strip()] for line in lines]


def test_proxy_status_lists_both_proxies_synced(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "proxy-status", "--monitoring-address", mesh.monitoring_address)
    assert code == 0
    header, *body = rows(out)
    assert header[:7] == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "SDS"]
    by_name = {row[0]: row for row in body}
    assert set(by_name) == {ALPHA, BETA}
    for name, row in by_name.items():
        assert row[1] == name.split("-")[0] + ".default"  # node.cluster
        assert all(cell.startswith("SYNCED (") for cell in row[2:6]), row
        assert row[-1] == f"spiffe://cluster.local/ns/default/sa/{name.split('-')[0]}"


def test_proxy_status_of_one_proxy_and_as_json(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "proxy-status", "beta-0", "--monitoring-address", mesh.monitoring_address
    )
    assert code == 0
    assert f"Node ID:   {mesh.envoys['beta'].node_id}" in out
    assert "spiffe://cluster.local/ns/default/sa/beta" in out
    cds = next(line for line in out.splitlines() if line.startswith("CDS"))
    assert "SYNCED" in cds
    code, out, _ = run(
        capsys, "proxy-status", "-o", "json", "--monitoring-address", mesh.monitoring_address
    )
    assert {entry["proxy"] for entry in json.loads(out)} == {ALPHA, BETA}
    code, _, err = run(
        capsys, "proxy-status", "nobody", "--monitoring-address", mesh.monitoring_address
    )
    assert code == 1 and "no connected proxy" in err


def test_proxy_config_clusters_match_the_live_envoy(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    code, ours, _ = run(
        capsys, "proxy-config", "clusters", ALPHA, "--monitoring-address", mesh.monitoring_address
    )
    assert code == 0
    header, *body = rows(ours)
    assert header == ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]
    assert ["beta.default.svc.cluster.local", "9080", "-", "outbound", "EDS", "-"] in body
    # The live Envoy's own view: the same dynamic clusters, plus its static xds-grpc cluster.
    code, live, _ = run(
        capsys, "proxy-config", "clusters", "--envoy-admin", mesh.envoys["alpha"].admin_url
    )
    assert code == 0
    live_rows = rows(live)[1:]
    assert "xds-grpc" in {r[0] for r in live_rows}
    assert [r for r in body] == [r for r in live_rows if r[0] != "xds-grpc"]


def test_proxy_config_listeners_routes_and_endpoints(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    address = mesh.monitoring_address
    _, listeners, _ = run(
        capsys, "proxy-config", "listeners", ALPHA, "--monitoring-address", address
    )
    listener_rows = rows(listeners)[1:]
    assert [
        "127.0.60.101_9080",
        "127.0.60.101",
        "9080",
        "ALL",
        "Route: 127.0.60.101_9080",
    ] in listener_rows
    assert any(r[1] == "127.0.60.1" and r[2] == "9080" for r in listener_rows)  # inbound
    _, live, _ = run(
        capsys, "proxy-config", "listeners", "--envoy-admin", mesh.envoys["alpha"].admin_url
    )
    assert rows(live)[1:] == listener_rows

    _, routes, _ = run(capsys, "proxy-config", "routes", ALPHA, "--monitoring-address", address)
    route_rows = rows(routes)[1:]
    vhosts = {r[1] for r in route_rows if r[0] == "127.0.60.101_9080"}
    assert {"alpha.default.svc.cluster.local:9080", "beta.default.svc.cluster.local:9080"} <= vhosts

    _, endpoints, _ = run(
        capsys, "proxy-config", "endpoints", ALPHA, "--monitoring-address", address
    )
    assert ["127.0.60.2:8080", "HEALTHY", "outbound|9080||beta.default.svc.cluster.local"] in rows(
        endpoints
    )

    _, as_yaml, _ = run(
        capsys, "proxy-config", "clusters", ALPHA, "-o", "yaml", "--monitoring-address", address
    )
    names = {c["name"] for c in yaml.safe_load(as_yaml)}
    assert names == mesh.envoys["alpha"].active_cluster_names()


def test_proxy_config_secrets_show_identity_and_validity_never_keys(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    address = mesh.monitoring_address
    code, out, _ = run(capsys, "proxy-config", "secrets", ALPHA, "--monitoring-address", address)
    assert code == 0
    header, *body = rows(out)
    assert header[:5] == ["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER"]
    default = next(r for r in body if r[0] == "default")
    assert default[1:4] == ["Cert Chain", "ACTIVE", "true"]
    assert int(default[4], 16) > 0
    assert default[-1] == "spiffe://cluster.local/ns/default/sa/alpha"
    root = next(r for r in body if r[0] == "ROOTCA")
    assert root[1] == "CA" and root[3] == "true"
    for output in ("json", "yaml"):
        _, full, _ = run(
            capsys, "proxy-config", "secrets", ALPHA, "-o", output, "--monitoring-address", address
        )
        assert "certificate_chain" in full
        assert "private_key" not in full and "PRIVATE KEY" not in full


def test_dashboard_says_where_everything_is(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    address = mesh.monitoring_address
    code, out, _ = run(capsys, "dashboard", "--monitoring-address", address)
    assert code == 0
    assert f"http://{address}/metrics" in out and f"http://{address}/debug/syncz" in out
    code, out, _ = run(capsys, "dashboard", "-o", "json", "--monitoring-address", address)
    where = json.loads(out)
    admins = {p["name"]: p["envoy_admin"] for p in where["proxies"]}
    assert admins == {ALPHA: mesh.envoys["alpha"].admin_url, BETA: mesh.envoys["beta"].admin_url}
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    assert run(capsys, "dashboard", "--open", "beta-0", "--monitoring-address", address)[0] == 0
    assert run(capsys, "dashboard", "--open", "--monitoring-address", address)[0] == 0
    assert opened == [mesh.envoys["beta"].admin_url, f"http://{address}/debug"]
    # What the dashboard points at answers.
    assert mesh.get_json("/debug")["/debug/syncz"]


def test_commands_say_when_the_control_plane_is_not_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    for argv in (["proxy-status"], ["proxy-config", "clusters", "x"], ["dashboard"]):
        code, _, err = run(capsys, *argv, "--monitoring-address", nowhere)
        assert code == 1 and f"cannot reach http://{nowhere}/" in err
