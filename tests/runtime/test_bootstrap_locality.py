"""``controlplane bootstrap --locality``: node.locality in the bootstrap, as pilot-agent writes it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from envoy.config.core.v3 import base_pb2
from google.protobuf.json_format import ParseDict

from controlplane.cli import main
from controlplane.translate import Locality, parse_node
from tests.harness.envoy import envoy_binary


def _bootstrap(tmp_path: Path, *args: str) -> tuple[dict, Path]:
    out = tmp_path / "envoy.yaml"
    assert main(["bootstrap", "--plaintext", "--admin-port", "0", "-o", str(out), *args]) == 0
    return yaml.safe_load(out.read_text()), out


def _proxy_locality(boot: dict) -> Locality:
    return parse_node(ParseDict(boot["node"], base_pb2.Node(), ignore_unknown_fields=True)).locality


def test_locality_flag_is_written_to_the_node_and_envoy_accepts_it(tmp_path: Path) -> None:
    boot, path = _bootstrap(tmp_path, "--locality", "us-east/us-east-1a/rack-1")
    assert boot["node"]["locality"] == {"region": "us-east", "zone": "us-east-1a", "sub_zone": "rack-1"}
    assert _proxy_locality(boot) == Locality("us-east", "us-east-1a", "rack-1")
    validated = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True, text=True, timeout=60,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_region_alone_and_no_locality(tmp_path: Path) -> None:
    boot, _ = _bootstrap(tmp_path, "--locality", "eu-west")
    assert boot["node"]["locality"] == {"region": "eu-west"}
    boot, _ = _bootstrap(tmp_path)
    assert "locality" not in boot["node"]


def test_locality_label_fills_the_node_locality_as_pilot_agent_does(tmp_path: Path) -> None:
    boot, _ = _bootstrap(tmp_path, "--labels", "app=a,istio-locality=eu-west.eu-west-1a")
    assert boot["node"]["locality"] == {"region": "eu-west", "zone": "eu-west-1a"}
    boot, _ = _bootstrap(tmp_path, "--labels", "topology.istio.io/locality=eu-west.eu-west-1a",
                         "--locality", "eu-west/eu-west-1a")  # agreeing: fine
    assert _proxy_locality(boot) == Locality("eu-west", "eu-west-1a")


@pytest.mark.parametrize("bad", [
    ["--locality", "a/b/c/d"],
    ["--locality", "us-east/*"],
    ["--locality", "/zone-only"],
    ["--locality", "us-east/us-east-1a", "--labels", "istio-locality=eu-west.eu-west-1a"],
])
def test_bad_or_conflicting_locality_is_refused(tmp_path: Path, bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bootstrap", "--plaintext", "-o", str(tmp_path / "x.yaml"), *bad])
    assert not (tmp_path / "x.yaml").exists()
