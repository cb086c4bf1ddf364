"""How the demo starts its processes: the control plane's flags are ones `serve` knows, every
Envoy bootstrap is valid for the real Envoy, and the apps call through their sidecars."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane.cli import serve
from controlplane.demo.mesh import (
    MeshOptions,
    app_spec,
    control_plane_spec,
    find_envoy,
    prepare_ca,
    sidecar_spec,
    write_bootstrap,
)
from controlplane.demo.topology import BASE_DIR, load_workloads

WORKLOADS = {w.name: w for w in load_workloads(BASE_DIR)}


def _serve_args(argv: tuple[str, ...]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv[argv.index("serve") :]))


@pytest.mark.parametrize("tls", [True, False])
def test_control_plane_flags_are_understood_by_serve(tmp_path: Path, tls: bool) -> None:
    options = MeshOptions(workdir=tmp_path, xds_tls=tls)
    spec = control_plane_spec(options, xds_port=15999, monitoring_port=15998)
    settings = serve.settings_from(_serve_args(spec.argv))
    assert settings.config_dirs == (tmp_path / "config",)
    assert settings.ca_dir == tmp_path / "ca"
    assert settings.monitoring_port == 15998
    if tls:
        assert (settings.xds_tls_port, settings.xds_plaintext_port) == (15999, None)
    else:
        assert (settings.xds_tls_port, settings.xds_plaintext_port) == (None, 15999)


def test_sidecar_bootstraps_are_valid_for_envoy(tmp_path: Path) -> None:
    options = MeshOptions(workdir=tmp_path)
    prepare_ca(options)
    envoy = find_envoy()
    for workload in (WORKLOADS["reviews-v2"], WORKLOADS["loadgen"]):
        path = write_bootstrap(workload, options, xds_port=15999)
        bootstrap = yaml.safe_load(path.read_text())
        node = bootstrap["node"]
        assert node["id"] == workload.node_id
        assert node["metadata"]["SERVICE_ACCOUNT"] == workload.service_account
        assert node["metadata"]["INTERCEPTION_MODE"] == "NONE"
        assert bootstrap["admin"]["address"]["socket_address"] == {
            "address": workload.address,
            "port_value": 15000,
        }
        grpc = bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]
        assert grpc["initial_metadata"][0]["value"].startswith("Bearer ")  # the workload's token
        spec = sidecar_spec(workload, path, envoy, "warning")
        checked = subprocess.run(
            [*spec.argv, "--mode", "validate"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_apps_call_their_downstreams_through_their_own_sidecar() -> None:
    argv = app_spec(WORKLOADS["productpage-v1"]).argv
    assert argv[argv.index("--listen") + 1] == "127.0.10.1:8080"
    assert argv[argv.index("--egress") + 1] == "127.0.10.101:9080"
    calls = [argv[i + 1] for i, a in enumerate(argv) if a == "--call"]
    assert calls == ["http://details:9080/", "http://reviews:9080/"]
    assert "--egress" not in app_spec(WORKLOADS["ratings-v1"]).argv
