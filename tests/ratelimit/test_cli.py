"""`controlplane ratelimit` as users run it: --check, serving over gRPC, SIGHUP reloads."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from tests.harness.ports import free_port
from tests.harness.wait import wait_for
from tests.ratelimit.processes import running_process

CONFIG = """
domain: cli
descriptors:
  - key: k
    rate_limit: {{unit: hour, requests_per_unit: {limit}}}
"""


def _ask(port: int, value: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = rls_pb2.RateLimitRequest(domain="cli")
        request.descriptors.add().entries.add(key="k", value=value)
        return rls_pb2_grpc.RateLimitServiceStub(channel).ShouldRateLimit(request, timeout=2).overall_code


def test_check_reports_errors_with_the_field(tmp_path: Path) -> None:
    config = tmp_path / "rl.yaml"
    config.write_text("domain: cli\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n")
    run = subprocess.run([sys.executable, "-m", "controlplane", "ratelimit", "--config", str(config), "--check"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1 and "descriptors[0].rate_limit.unit" in run.stderr and str(config) in run.stderr
    config.write_text(CONFIG.format(limit=1))
    run = subprocess.run([sys.executable, "-m", "controlplane", "ratelimit", "--config", str(config), "--check"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and "cli" in run.stdout


def test_serves_and_reloads_on_sighup(tmp_path: Path) -> None:
    config = tmp_path / "rl.yaml"
    config.write_text(CONFIG.format(limit=1))
    port, metrics_port = free_port(), free_port()
    args = [sys.executable, "-m", "controlplane", "ratelimit", "--config", str(config), "--port", str(port),
            "--metrics-port", str(metrics_port)]
    with running_process(args, tmp_path / "rls.log") as process:
        wait_for(lambda: _ask(port, "a") == rls_pb2.RateLimitResponse.OK, deadline=20, message="RLS answering")
        assert _ask(port, "a") == rls_pb2.RateLimitResponse.OVER_LIMIT
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'ratelimit_service_rate_limit_over_limit{descriptor="k",domain="cli"} 1.0' in metrics
        assert 'ratelimit_service_rate_limit_total_hits{descriptor="k",domain="cli"} 2.0' in metrics
        config.write_text("domain: [broken")  # a bad config is reported, the running one kept
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "not reloaded" in (tmp_path / "rls.log").read_text(), message="reload refused")
        assert _ask(port, "a") == rls_pb2.RateLimitResponse.OVER_LIMIT
        config.write_text(CONFIG.format(limit=100))
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: _ask(port, "a") == rls_pb2.RateLimitResponse.OK, message="the new limit")
