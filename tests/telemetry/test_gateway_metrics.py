"""Istio's standard metrics on an ingress gateway (real Envoys, mTLS to the mesh).

A router Envoy (``istio: ingressgateway``) in front of the ``web`` sidecar of
``metrics_mesh``: as Istio's gateways, it reports the calls it makes into the mesh as
``reporter="source"`` with its own workload as the source and the app as the destination
(learnt from the headers the sidecars exchange), and ``web``'s sidecar names the gateway as
its caller. Every config is ACKed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.translate.istio_metrics.labels import HTTP_LABELS
from tests.harness.envoy import http_get
from tests.harness.wait import wait_for
from tests.telemetry.metrics_mesh import (
    HTTP_PORT,
    MetricsMesh,
    Sidecar,
    gateway_proxy,
    metrics_mesh,
)

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

GATEWAY = "istio-ingressgateway"
GATEWAY_PORT = 8080
LABELS = {"istio": "ingressgateway", "app": GATEWAY}
SPIFFE = "spiffe://cluster.local/ns/default/sa/{}"


def _docs() -> list[dict[str, Any]]:
    meta = {"namespace": "default"}
    return [
        {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "ingress", **meta},
         "spec": {"selector": {"istio": "ingressgateway"},
                  "servers": [{"port": {"number": GATEWAY_PORT, "name": "http", "protocol": "HTTP"},
                               "hosts": ["*"]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "web-ingress", **meta},
         "spec": {"hosts": ["*"], "gateways": ["ingress"],
                  "http": [{"route": [{"destination": {"host": "web", "port": {"number": HTTP_PORT}}}]}]}},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def gateway_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MetricsMesh, Sidecar]]:
    with (
        metrics_mesh(tmp_path_factory.mktemp("gateway-metrics"), _docs()) as mesh,
        gateway_proxy(mesh, GATEWAY, LABELS, (GATEWAY_PORT,)) as gateway,
    ):
        yield mesh, gateway


def _get(address: str) -> int:
    return http_get(address, GATEWAY_PORT, headers={"host": "shop.example.com"}, timeout=10)[0]


def _requests(mesh: MetricsMesh, proxy: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    return [
        (ls, v)
        for n, ls, v in mesh.samples(proxy)
        if n == "istio_requests_total" and all(ls.get(k) == w for k, w in labels.items())
    ]


def test_the_gateway_reports_its_calls_into_the_mesh_as_the_source(gateway_mesh: tuple[MetricsMesh, Sidecar]) -> None:
    mesh, gateway = gateway_mesh
    wait_for(lambda: _get(gateway.address) == 200, message="web through the gateway")
    mtls = {"source_workload": GATEWAY, "destination_principal": SPIFFE.format("web"), "response_code": "200"}
    before = {p: sum(v for _, v in _requests(mesh, p, **mtls)) for p in (GATEWAY, "web")}
    assert [_get(gateway.address) for _ in range(4)] == [200] * 4
    for proxy in (GATEWAY, "web"):
        wait_for(
            lambda p=proxy: sum(v for _, v in _requests(mesh, p, **mtls)) - before[p] == 4,
            message=f"{proxy} counts the 4 calls",
        )

    [(source, _)] = _requests(mesh, GATEWAY, **mtls)
    assert list(source) == list(HTTP_LABELS)
    assert source == {
        "reporter": "source",
        "source_workload": GATEWAY, "source_canonical_service": GATEWAY, "source_canonical_revision": "latest",
        "source_workload_namespace": "default", "source_principal": SPIFFE.format(GATEWAY),
        "source_app": GATEWAY, "source_version": "unknown", "source_cluster": "Kubernetes",
        "destination_workload": "web", "destination_workload_namespace": "default",
        "destination_principal": SPIFFE.format("web"), "destination_app": "web", "destination_version": "v1",
        "destination_service": "web.default.svc.cluster.local", "destination_canonical_service": "web",
        "destination_canonical_revision": "v1", "destination_service_name": "web",
        "destination_service_namespace": "default", "destination_cluster": "Kubernetes",
        "request_protocol": "http", "response_flags": "-", "connection_security_policy": "unknown",
        "response_code": "200", "grpc_response_status": "",
    }  # fmt: skip
    # web's sidecar names the gateway as its caller, from the gateway's headers and certificate
    [(destination, _)] = _requests(mesh, "web", **mtls)
    assert destination["reporter"] == "destination"
    assert destination["source_principal"] == SPIFFE.format(GATEWAY)
    assert destination["source_app"] == GATEWAY and destination["connection_security_policy"] == "mutual_tls"
    stats = gateway.envoy.stats()
    assert not {k: v for k, v in stats.items() if k.endswith("update_rejected") and v}
