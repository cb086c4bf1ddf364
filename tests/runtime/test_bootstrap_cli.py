from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane.auth import build_authenticator
from controlplane.ca import load_or_init_ca
from controlplane.cli import main
from tests.harness.envoy import envoy_binary


def _bootstrap(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "envoy.yaml"
    assert main(["bootstrap", "--ca-dir", str(tmp_path / "ca"), "-o", str(out), *args]) == 0
    return yaml.safe_load(out.read_text()) | {"_path": str(out)}


def test_bootstrap_is_valid_envoy_config_carrying_root_and_a_token_for_its_identity(tmp_path: Path) -> None:
    ca = load_or_init_ca(tmp_path / "ca", "cluster.local")
    boot = _bootstrap(
        tmp_path, "-n", "shop", "-s", "cart", "--labels", "app=cart,version=v2", "--ip", "127.0.40.7",
        "--xds-address", "127.0.0.1:15012", "--admin-port", "0",
    )
    node = boot["node"]
    assert node["id"] == "sidecar~127.0.40.7~cart-0.shop~shop.svc.cluster.local"
    assert node["metadata"]["LABELS"] == {"app": "cart", "version": "v2"}
    assert node["metadata"]["SERVICE_ACCOUNT"] == "cart"
    xds_cluster = next(c for c in boot["static_resources"]["clusters"] if c["name"] == "xds-grpc")
    tls = xds_cluster["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["validation_context"]["trusted_ca"]["inline_string"] == ca.bundle.pem
    (grpc_service,) = boot["dynamic_resources"]["ads_config"]["grpc_services"]
    (header,) = grpc_service["initial_metadata"]
    identity = asyncio.run(
        build_authenticator(tmp_path / "ca", "cluster.local").authenticate([("authorization", header["value"])])
    )
    assert (identity.namespace, identity.service_account) == ("shop", "cart")
    validated = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", boot["_path"], "--disable-hot-restart"],
        capture_output=True, text=True, timeout=60,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_token_file_and_root_cert_replace_the_ca_folder(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("projected-token\n")
    (tmp_path / "root.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    boot = _bootstrap(tmp_path, "--token-file", str(tmp_path / "token"), "--root-cert", str(tmp_path / "root.pem"))
    (grpc_service,) = boot["dynamic_resources"]["ads_config"]["grpc_services"]
    assert grpc_service["initial_metadata"] == [{"key": "authorization", "value": "Bearer projected-token"}]
    assert not (tmp_path / "ca").exists(), "nothing read from or created in the CA folder"


def test_plaintext_bootstrap_has_no_credential(tmp_path: Path) -> None:
    boot = _bootstrap(tmp_path, "--plaintext", "--xds-address", "127.0.0.1:15010")
    (grpc_service,) = boot["dynamic_resources"]["ads_config"]["grpc_services"]
    assert "initial_metadata" not in grpc_service


@pytest.mark.parametrize("bad", [["--labels", "novalue"], ["--xds-address", "nohost"]])
def test_bad_arguments_are_refused(tmp_path: Path, bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bootstrap", "--plaintext", *bad])


def test_xds_tls_accepts_only_the_control_planes_name(tmp_path: Path) -> None:
    load_or_init_ca(tmp_path / "ca", "cluster.local")
    boot = _bootstrap(tmp_path, "--xds-address", "127.0.0.1:15012")
    xds_cluster = next(c for c in boot["static_resources"]["clusters"] if c["name"] == "xds-grpc")
    validation = xds_cluster["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "istiod.istio-system.svc"}}
    ]


@pytest.mark.parametrize("name", ["envoy.yaml", "envoy.json"])
def test_bootstrap_file_is_mode_0600_even_over_an_existing_file(tmp_path: Path, name: str) -> None:
    """It carries a token: only its owner may read it, whatever the umask or the old file's mode."""
    import os
    import stat

    load_or_init_ca(tmp_path / "ca", "cluster.local")
    out = tmp_path / name
    out.write_text("old")
    out.chmod(0o644)
    old_umask = os.umask(0)
    try:
        assert main(["bootstrap", "--ca-dir", str(tmp_path / "ca"), "-o", str(out),
                     "-n", "shop", "-s", "cart"]) == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "Bearer " in out.read_text()
