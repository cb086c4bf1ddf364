"""Istio's standard metrics from real Envoy sidecars over mTLS (see ``metrics_mesh.py``).

After a known number of HTTP, gRPC and TCP calls from ``client``, both sidecars of each pair
report them with exactly Istio's label set (names after the shipped relabeling): the client's
as ``reporter="source"``, the server's as ``reporter="destination"``, with both workloads,
their SPIFFE principals, the response codes and ``connection_security_policy="mutual_tls"``
where the server saw the caller's certificate. The peer headers never reach the app.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from controlplane.translate.istio_metrics.labels import HTTP_LABELS, TCP_LABELS
from controlplane.translate.istio_metrics.workload import PEER_HEADERS
from tests.harness.wait import wait_for
from tests.telemetry.metrics_mesh import MetricsMesh, metrics_mesh

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SPIFFE = "spiffe://cluster.local/ns/default/sa/{}"
Series = tuple[str, dict[str, str], float]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsMesh]:
    with metrics_mesh(tmp_path_factory.mktemp("istio-metrics")) as m:
        yield m


def _total(samples: list[Series], name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items()))


def _series(samples: list[Series], name: str, **labels: str) -> list[dict[str, str]]:
    return [ls for n, ls, _ in samples if n == name and all(ls.get(k) == w for k, w in labels.items())]


def _wait_delta(mesh: MetricsMesh, proxy: str, before: float, expected: float, name: str, **labels: str) -> float:
    return wait_for(
        lambda: (_total(mesh.samples(proxy), name, **labels) - before) == expected or None,
        message=f"{proxy}: {name}{labels} grows by {expected}",
    ) and _total(mesh.samples(proxy), name, **labels) - before


def test_http_calls_are_counted_by_both_reporters(mesh: MetricsMesh) -> None:
    common = {"destination_service": "web.default.svc.cluster.local", "request_protocol": "http"}
    ok_before = {p: _total(mesh.samples(p), "istio_requests_total", response_code="200", **common) for p in ("client", "web")}
    bad_before = {p: _total(mesh.samples(p), "istio_requests_total", response_code="503", **common) for p in ("client", "web")}
    assert [mesh.http("/") for _ in range(5)] == [200] * 5
    assert [mesh.http("/status/503") for _ in range(2)] == [503] * 2
    for proxy in ("client", "web"):
        _wait_delta(mesh, proxy, ok_before[proxy], 5, "istio_requests_total", response_code="200", **common)
        _wait_delta(mesh, proxy, bad_before[proxy], 2, "istio_requests_total", response_code="503", **common)

    # (a warm-up call made before the client had the server's certificate data would be a
    # plaintext series of its own: pick the mTLS ones)
    mtls = {"destination_principal": SPIFFE.format("web"), **common}
    [source] = _series(mesh.samples("client"), "istio_requests_total", response_code="200", **mtls)
    [destination] = _series(mesh.samples("web"), "istio_requests_total", response_code="200", **mtls)
    assert list(source) == list(HTTP_LABELS) and list(destination) == list(HTTP_LABELS)
    expected = {
        "source_workload": "client", "source_workload_namespace": "default", "source_app": "client",
        "source_version": "v1", "source_canonical_service": "client", "source_canonical_revision": "v1",
        "source_principal": SPIFFE.format("client"), "source_cluster": "Kubernetes",
        "destination_workload": "web", "destination_workload_namespace": "default", "destination_app": "web",
        "destination_version": "v1", "destination_canonical_service": "web", "destination_canonical_revision": "v1",
        "destination_principal": SPIFFE.format("web"), "destination_cluster": "Kubernetes",
        "destination_service": "web.default.svc.cluster.local", "destination_service_name": "web",
        "destination_service_namespace": "default", "request_protocol": "http", "response_code": "200",
        "response_flags": "-", "grpc_response_status": "",
    }  # fmt: skip
    assert source == {**expected, "reporter": "source", "connection_security_policy": "unknown"}
    assert destination == {**expected, "reporter": "destination", "connection_security_policy": "mutual_tls"}


def test_http_histograms_have_istios_buckets(mesh: MetricsMesh) -> None:
    mesh.http("/")
    samples = wait_for(
        lambda: [s for s in mesh.samples("web") if s[0] == "istio_request_duration_milliseconds_bucket"],
        message="duration histogram flushed",
    )
    buckets = sorted({float(ls["le"]) for _, ls, _ in samples if ls["le"] != "+Inf"})
    assert buckets == [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                       300000, 600000, 1800000, 3600000]  # fmt: skip
    sizes = wait_for(lambda: [s for s in mesh.samples("client") if s[0] == "istio_response_bytes_bucket"],
                     message="response size histogram flushed")
    assert sorted({float(ls["le"]) for _, ls, _ in sizes if ls["le"] != "+Inf"}) == [10.0**i for i in range(10)]
    count = wait_for(lambda: _total(mesh.samples("web"), "istio_request_bytes_count", reporter="destination"),
                     message="request size count")
    assert count >= 1


def test_grpc_calls_carry_their_status(mesh: MetricsMesh) -> None:
    common = {"destination_service": "rpc.default.svc.cluster.local", "request_protocol": "grpc"}
    before = {(p, s): _total(mesh.samples(p), "istio_requests_total", grpc_response_status=s, **common)
              for p in ("client", "rpc") for s in ("0", "13")}  # fmt: skip
    assert [mesh.grpc(b"hi") for _ in range(3)] == [grpc.StatusCode.OK] * 3
    assert mesh.grpc(b"fail") == grpc.StatusCode.INTERNAL
    for proxy in ("client", "rpc"):
        _wait_delta(mesh, proxy, before[(proxy, "0")], 3, "istio_requests_total", grpc_response_status="0", **common)
        _wait_delta(mesh, proxy, before[(proxy, "13")], 1, "istio_requests_total", grpc_response_status="13", **common)
    [server] = _series(mesh.samples("rpc"), "istio_requests_total", grpc_response_status="13", **common)
    assert server["reporter"] == "destination" and server["response_code"] == "200"
    assert server["source_workload"] == "client" and server["destination_workload"] == "rpc"
    assert server["connection_security_policy"] == "mutual_tls"


def test_tcp_connections_and_bytes(mesh: MetricsMesh) -> None:
    labels = {"destination_service": "db.default.svc.cluster.local", "request_protocol": "tcp"}
    names = ("istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
             "istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total")  # fmt: skip
    before = {(p, n): _total(mesh.samples(p), n, **labels) for p in ("client", "db") for n in names}
    assert [mesh.tcp(b"hello") for _ in range(3)] == [b"hello"] * 3
    for proxy in ("client", "db"):
        _wait_delta(mesh, proxy, before[(proxy, names[0])], 3, names[0], **labels)
        _wait_delta(mesh, proxy, before[(proxy, names[1])], 3, names[1], **labels)
        # each connection: 5 bytes from the client, 5 back (the app's bytes, as the proxy saw them)
        sent = _total(mesh.samples(proxy), names[2], **labels) - before[(proxy, names[2])]
        received = _total(mesh.samples(proxy), names[3], **labels) - before[(proxy, names[3])]
        assert (sent, received) == (15, 15)
    mtls = {"destination_principal": SPIFFE.format("db"), **labels}
    [server] = _series(mesh.samples("db"), "istio_tcp_connections_closed_total", **mtls)
    assert list(server) == list(TCP_LABELS)
    assert server["reporter"] == "destination" and server["connection_security_policy"] == "mutual_tls"
    assert server["source_principal"] == SPIFFE.format("client")
    assert server["destination_principal"] == SPIFFE.format("db") and server["destination_workload"] == "db"
    [client] = _series(mesh.samples("client"), "istio_tcp_connections_closed_total", **mtls)
    assert list(client) == list(TCP_LABELS)
    assert client["reporter"] == "source" and client["source_workload"] == "client"
    assert client["destination_principal"] == SPIFFE.format("db")
    # no headers on TCP: the client names the server from its endpoint's metadata, as Istio's
    # (which carries neither app nor version)
    assert {k: v for k, v in client.items() if k.startswith("destination_") and not k.startswith("destination_service")} == {
        "destination_workload": "db", "destination_workload_namespace": "default",
        "destination_principal": SPIFFE.format("db"), "destination_app": "unknown", "destination_version": "unknown",
        "destination_canonical_service": "db", "destination_canonical_revision": "v1",
        "destination_cluster": "Kubernetes",
    }  # fmt: skip


def test_the_app_never_sees_the_peer_headers(mesh: MetricsMesh) -> None:
    import http.client

    conn = http.client.HTTPConnection(mesh.address("client"), 9080, timeout=10)
    try:
        conn.request("GET", "/echo", headers={"host": "web"})
        response = conn.getresponse()
        echo: dict[str, Any] = json.loads(response.read())
        response_headers = {k.lower() for k, _ in response.getheaders()}
    finally:
        conn.close()
    seen = {k.lower() for k in echo.get("headers", {})}
    assert response.status == 200 and seen, echo
    assert not seen & set(PEER_HEADERS.values())  # the server's sidecar removed them
    assert not response_headers & set(PEER_HEADERS.values())  # the client's sidecar too
