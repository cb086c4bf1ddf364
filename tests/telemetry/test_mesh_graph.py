"""The mesh graph's arithmetic: rates, error percentages and p99 between two scrapes, as
Prometheus' rate() and histogram_quantile() would give them, and which reporter speaks for a
call."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from controlplane.server.mesh_graph import Call, calls_between, graph, parse_prometheus, quantile
from tests.harness.control_plane import served_control_plane
from tests.harness.ports import free_port

CALL = {"source_workload": "client", "source_workload_namespace": "default",
        "destination_service": "web.default.svc.cluster.local", "destination_workload": "web",
        "destination_workload_namespace": "default"}  # fmt: skip


def page(reporter: str, ok: int, errors: int, buckets: dict[str, int], mtls: str = "mutual_tls", **over: str) -> str:
    labels = {**CALL, "reporter": reporter, "connection_security_policy": mtls, "request_protocol": "http", **over}
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    lines = [
        f'envoy_istiocustom_istio_requests_total{{{text},response_code="200"}} {ok}',
        f'envoy_istiocustom_istio_requests_total{{{text},response_code="503"}} {errors}',
        "# TYPE envoy_cluster_upstream_rq counter",
        'envoy_cluster_upstream_rq{cluster_name="x"} 99',
    ]
    lines += [f'envoy_istiocustom_istio_request_duration_milliseconds_bucket{{{text},le="{le}"}} {n}'
              for le, n in buckets.items()]  # fmt: skip
    return "\n".join(lines)


def test_parse_keeps_istios_metrics_under_their_names() -> None:
    samples = parse_prometheus(page("source", 1, 0, {"+Inf": 1}))
    assert {name for name, _, _ in samples} == {"istio_requests_total", "istio_request_duration_milliseconds_bucket"}


def test_quantile_interpolates_like_prometheus() -> None:
    assert quantile(0.5, {10.0: 50, 20.0: 100, math.inf: 100}) == 10.0
    assert quantile(0.99, {10.0: 0, 20.0: 100, math.inf: 100}) == pytest.approx(19.9)
    assert quantile(0.99, {10.0: 0, math.inf: 0}) is None
    assert quantile(0.99, {10.0: 0, 20.0: 0, math.inf: 10}) == 20.0  # beyond the last bound


def test_rates_errors_and_p99_between_two_scrapes() -> None:
    before = parse_prometheus(page("destination", 100, 10, {"5": 50, "10": 110, "+Inf": 110}))
    after = parse_prometheus(page("destination", 190, 30, {"5": 50, "10": 210, "+Inf": 220}))
    [call] = calls_between(before, after, 10.0)
    assert call.rate == pytest.approx(11.0)  # (90 + 20) / 10 s
    assert call.error_percent == pytest.approx(100 * 20 / 110)
    assert call.p99_ms == 10.0  # 100 of 110 new requests in (5, 10], 10 beyond: Prometheus says 10
    assert call.mtls and call.source == "default/client" and call.destination == "default/web"


def test_the_destination_speaks_for_a_call_else_the_source() -> None:
    before = parse_prometheus(page("source", 0, 0, {}) + "\n" + page("destination", 0, 0, {}))
    after = parse_prometheus(page("source", 10, 0, {}, mtls="unknown") + "\n" + page("destination", 10, 0, {}))
    [call] = calls_between(before, after, 1.0)
    assert call.reporter == "destination" and call.mtls


def test_a_server_that_cannot_name_its_caller_defers_to_the_caller() -> None:
    """TCP: the server knows the mTLS and its own workload, the client knows who called."""
    unnamed = {"source_workload": "unknown", "source_workload_namespace": "unknown"}
    tcp = {"destination_workload": "unknown", "destination_workload_namespace": "unknown"}
    before = ""
    after = (page("destination", 5, 0, {}, request_protocol="tcp", **unnamed) + "\n"
             + page("source", 5, 0, {}, mtls="unknown", request_protocol="tcp", **tcp))  # fmt: skip
    [call] = calls_between(parse_prometheus(before), parse_prometheus(after), 1.0)
    assert (call.source, call.destination, call.mtls) == ("default/client", "default/web", True)
    # over HTTP an unnamed caller is a caller without a sidecar: its own edge
    plaintext = page("destination", 5, 0, {}, mtls="none", **unnamed) + "\n" + page("source", 5, 0, {})
    assert {c.source for c in calls_between([], parse_prometheus(plaintext), 1.0)} == {"unknown/unknown", "default/client"}


def test_graph_nodes_and_edges() -> None:
    calls = [Call("default/client", "web.default.svc.cluster.local", "default/web", "http", 4.0, 25.0, 12.5, True, "destination"),
             Call("default/other", "web.default.svc.cluster.local", "default/web", "http", 1.0, 0.0, 3.0, False, "destination")]  # fmt: skip
    g = graph(calls)
    assert [n["id"] for n in g["nodes"]] == ["default/client", "default/other", "default/web", "web.default.svc.cluster.local"]
    edges = {(e["source"], e["target"]): e for e in g["edges"]}
    into_web = edges[("web.default.svc.cluster.local", "default/web")]
    assert into_web["rate"] == 5.0 and into_web["error_percent"] == 20.0
    assert into_web["p99_ms"] == 12.5 and into_web["mtls"] is False  # one caller without mTLS
    assert edges[("default/client", "web.default.svc.cluster.local")]["mtls"] is True


def test_serve_reads_the_prometheus_it_is_given(tmp_path: Path) -> None:
    """``serve --prometheus-url``: the graph's data come from there; one that cannot be read is
    said in the answer (and the page), not a failed request."""
    config = tmp_path / "config"
    config.mkdir()
    unreachable = f"http://127.0.0.1:{free_port()}"
    with served_control_plane(tmp_path, config, "--prometheus-url", unreachable) as cp:
        status, body = cp.get("/debug/graph")
        assert status == 200
        data = json.loads(body)
        assert data["source"] == unreachable and data["graph"] == {"nodes": [], "edges": []}
        assert data["error"].startswith("reading metrics:")
        status, page = cp.get("/graph")
        assert status == 200 and "/graph/mesh.js" in page
        assert cp.get("/graph/mesh.js")[0] == 200 and cp.get("/graph/mesh.css")[0] == 200
        assert json.loads(cp.get("/debug/prometheus_sd")[1]) == []  # no sidecar connected
