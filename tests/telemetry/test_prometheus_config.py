"""The shipped Prometheus configurations: the deploy file is what the code makes, both are
valid for a real Prometheus (``promtool check config``, where installed), and their relabeling
gives Envoy's prefixed metrics Istio's names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane.cli import main
from controlplane.translate.istio_metrics.prometheus import (
    istio_name,
    kubernetes_config,
    local_config,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "prometheus.yaml"


def test_the_deploy_file_is_the_kubernetes_config() -> None:
    doc = yaml.safe_load(DEPLOY.read_text())
    assert doc["kind"] == "ConfigMap"
    assert yaml.safe_load(doc["data"]["prometheus.yml"]) == kubernetes_config()


def test_the_cli_prints_the_local_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prometheus-config", "--monitoring-address", "http://127.0.0.1:25014/", "--scrape-interval", "1s"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == local_config("127.0.0.1:25014", interval="1s")
    jobs = {job["job_name"]: job for job in printed["scrape_configs"]}
    assert jobs["istiod"]["static_configs"] == [{"targets": ["127.0.0.1:25014"]}]
    assert jobs["envoy-stats"]["http_sd_configs"][0]["url"] == "http://127.0.0.1:25014/debug/prometheus_sd"


@pytest.mark.parametrize(
    ("envoy", "istio"),
    [
        ("envoy_istiocustom_istio_requests_total", "istio_requests_total"),
        ("envoy_istiocustom_istio_request_duration_milliseconds_bucket", "istio_request_duration_milliseconds_bucket"),
        ("envoy_cluster_upstream_rq", "envoy_cluster_upstream_rq"),
    ],
)
def test_relabeling_gives_istios_names(envoy: str, istio: str) -> None:
    assert istio_name(envoy) == istio


def test_promtool_accepts_the_local_config(tmp_path: Path) -> None:
    """(Debian's Prometheus is built without Kubernetes service discovery: only the local
    configuration can be checked here.)"""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    body = local_config("127.0.0.1:15014")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(body))
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
