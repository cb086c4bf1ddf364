"""Istio's PromQL, unchanged, against a real Prometheus scraping a small mesh of real Envoys
with the shipped configuration (``controlplane prometheus-config``: the control plane's
monitoring port, and the sidecars it discovers from ``/debug/prometheus_sd``), 1 s scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from controlplane.server.mesh_graph import Call, PrometheusReader
from controlplane.translate.istio_metrics.prometheus import local_config
from tests.harness.wait import wait_for
from tests.telemetry.metrics_mesh import MetricsMesh, metrics_mesh
from tests.telemetry.prometheus_server import (
    RunningPrometheus,
    prometheus_binary,
    running_prometheus,
)

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

WEB = 'destination_service="web.default.svc.cluster.local"'


@pytest.fixture(scope="module")
def mesh_and_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MetricsMesh, RunningPrometheus]]:
    prometheus_binary()  # skip before starting anything when it is missing
    workdir: Path = tmp_path_factory.mktemp("prometheus-mesh")
    with metrics_mesh(workdir) as mesh:
        config = local_config(f"127.0.0.1:{mesh.cp.monitoring_port}", interval="1s")
        with running_prometheus(workdir / "prometheus", config) as prometheus:
            # the control plane and the four sidecars
            wait_for(lambda: prometheus.targets_up() == 5, deadline=90, message="5 targets up")
            yield mesh, prometheus


def _traffic(mesh: MetricsMesh, path: str, seconds: float) -> tuple[int, int]:
    """Requests to ``web`` for ``seconds``: (sent, answered with 5xx)."""
    sent = errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status = mesh.http(path)
        sent += 1
        errors += status >= 500
    return sent, errors


def _counter(prometheus: RunningPrometheus, selector: str) -> float:
    return prometheus.scalar(f"sum(istio_requests_total{{{selector}}})") or 0.0


def test_request_rate_and_latency_quantile(mesh_and_prometheus: tuple[MetricsMesh, RunningPrometheus]) -> None:
    mesh, prometheus = mesh_and_prometheus
    selector = f'reporter="source",{WEB},response_code="200"'
    before = _counter(prometheus, selector)
    sent, errors = _traffic(mesh, "/sleep/30", 6.0)
    assert errors == 0 and sent > 20
    # Prometheus holds exactly what the client's sidecar counted.
    wait_for(lambda: _counter(prometheus, selector) - before == sent, deadline=15,
             message=f"{sent} more requests in Prometheus")  # fmt: skip
    rate = prometheus.scalar("sum(rate(istio_requests_total[1m]))")
    assert rate is not None and rate > 0
    # rate() over one minute spreads what the window saw over 60 s: all of this test's traffic
    # (and the mesh's warm-up calls) is in it.
    by_reporter = prometheus.scalar(f'sum(rate(istio_requests_total{{reporter="destination",{WEB}}}[1m]))')
    assert by_reporter is not None and sent * 0.5 < by_reporter * 60 < sent * 2
    p95 = prometheus.scalar(
        "histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket[1m])) by (le))"
    )
    # every request slept 30 ms in the app (Istio's bucket (25, 50]); on a loaded machine a few
    # take longer, so the 95th percentile may reach into the next bucket, (50, 100]
    assert p95 is not None and 25 <= p95 <= 100


def test_5xx_rate_during_a_fault_injection(mesh_and_prometheus: tuple[MetricsMesh, RunningPrometheus]) -> None:
    mesh, prometheus = mesh_and_prometheus
    fault = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web-fault", "namespace": "default"},
        "spec": {"hosts": ["web"], "http": [{"fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100}}},
                                             "route": [{"destination": {"host": "web"}}]}]},
    }  # fmt: skip
    selector = f'reporter="source",{WEB},response_code="500"'
    before = _counter(prometheus, selector)
    (mesh.config / "fault.yaml").write_text(yaml.safe_dump(fault))
    try:
        wait_for(lambda: mesh.http("/") == 500, message="the abort applies")
        sent, errors = _traffic(mesh, "/", 4.0)
        assert errors == sent
        wait_for(lambda: _counter(prometheus, selector) - before >= sent, deadline=15,
                 message="the aborted requests in Prometheus")  # fmt: skip
        error_rate = prometheus.scalar(f'sum(rate(istio_requests_total{{response_code=~"5..",{WEB}}}[1m]))')
        assert error_rate is not None and error_rate > 0
        # the abort happens in the client's sidecar: its reporter says so with the fault flag
        flags = {r["metric"]["response_flags"] for r in prometheus.query(f"istio_requests_total{{{selector}}}")}
        assert "FI" in flags
    finally:
        (mesh.config / "fault.yaml").unlink()
        wait_for(lambda: mesh.http("/") == 200, message="the abort is gone")


def test_the_mesh_graph_reads_prometheus(mesh_and_prometheus: tuple[MetricsMesh, RunningPrometheus]) -> None:
    """What ``serve --prometheus-url`` gives the graph page: Istio's PromQL over one minute."""
    mesh, prometheus = mesh_and_prometheus
    _traffic(mesh, "/", 3.0)
    # Connections a few scrapes apart: rate() needs a series to grow after its first sample
    # (the first mTLS connection to db makes a new series).
    for _ in range(3):
        mesh.tcp()
        time.sleep(1.5)

    def calls() -> dict[tuple[str, str, str], Call] | None:
        found = {(c.source, c.service, c.destination): c for c in PrometheusReader(prometheus.url).calls_sync()}
        wanted = [("default/client", f"{s}.default.svc.cluster.local", f"default/{s}") for s in ("web", "db")]
        # Envoy flushes histograms every 5 s: wait for the latency too
        complete = all(k in found for k in wanted) and found[wanted[0]].p99_ms is not None
        return found if complete else None

    found = wait_for(calls, deadline=45, interval=0.5, message="client's calls in Prometheus")
    web = found[("default/client", "web.default.svc.cluster.local", "default/web")]
    assert web.rate > 0 and web.mtls and web.reporter == "destination"
    assert web.p99_ms is not None and web.p99_ms > 0
    db = found[("default/client", "db.default.svc.cluster.local", "default/db")]
    assert db.protocol == "tcp" and db.mtls  # the client's report joined with the server's view


def test_the_control_plane_is_scraped_too(mesh_and_prometheus: tuple[MetricsMesh, RunningPrometheus]) -> None:
    _, prometheus = mesh_and_prometheus
    assert prometheus.scalar('up{job="istiod"}') == 1
    pushes = prometheus.scalar("sum(pilot_xds_pushes)")
    assert pushes is not None and pushes > 0
