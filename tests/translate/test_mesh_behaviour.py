"""A mesh on one machine, through real Envoys fed by our ADS server (no iptables).

Topology: a client sidecar whose egress listener binds 127.0.213.1:9080 and routes by Host;
three workloads (reviews-v1, reviews-v2, testapp), each an app on 127.0.0.1:<free port>
behind its own sidecar whose Sidecar ``ingress`` binds the workload address
127.0.213.1x:9080. Endpoints are the workload addresses, as EndpointSlices would say.
One set of Envoys serves every test in this module.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import http.client
import math
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.core.v3 import base_pb2
from google.protobuf.json_format import ParseDict

from controlplane.translate import MeshConfig, parse_node, push_context, translate
from tests.harness.envoy import EnvoyProcess
from tests.translate.fast_upstream import FastUpstream
from tests.translate.support import load_documents, snapshot_of
from tests.translate.xds_thread import xds_server_thread

pytestmark = [pytest.mark.envoy, pytest.mark.slow]
CLIENT_ADDR = "127.0.213.1"
WORKLOADS = {  # name: (labels, workload address)
    "reviews-v1": ({"app": "reviews", "version": "v1"}, "127.0.213.11"),
    "reviews-v2": ({"app": "reviews", "version": "v2"}, "127.0.213.12"),
    "testapp-v1": ({"app": "testapp", "version": "v1"}, "127.0.213.13"),
}
PORT = 9080


def _mesh_yaml(app_ports: dict[str, int]) -> str:
    def service(name: str, selector: dict[str, str]) -> dict:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                "spec": {"clusterIP": f"10.96.9.{len(name) + 1}", "selector": selector,
                         "ports": [{"name": "http", "port": PORT}]}}

    def slice_(service_name: str, workloads: list[str]) -> dict:
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"{service_name}-x", "labels": {"kubernetes.io/service-name": service_name}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": PORT}],
                "endpoints": [{"addresses": [WORKLOADS[w][1]], "targetRef": {"kind": "Pod", "name": w}}
                              for w in workloads]}

    docs: list[dict[str, Any]] = [
        service("reviews", {"app": "reviews"}), slice_("reviews", ["reviews-v1", "reviews-v2"]),
        service("testapp", {"app": "testapp"}), slice_("testapp", ["testapp-v1"]),
        service("outlier", {"app": "reviews"}), slice_("outlier", ["reviews-v1", "reviews-v2"]),
        service("pool", {"app": "testapp"}), slice_("pool", ["testapp-v1"]),
    ]
    for name, (labels, _) in WORKLOADS.items():
        docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}})
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": name},
                     "spec": {"workloadSelector": {"labels": labels},
                              "ingress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                                           "captureMode": "NONE",
                                           "defaultEndpoint": f"127.0.0.1:{app_ports[name]}"}],
                              "egress": [{"hosts": ["~/*"]}]}})
    docs += [
        {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "client"},
         "spec": {"workloadSelector": {"labels": {"app": "client"}},
                  "egress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"}, "bind": CLIENT_ADDR,
                              "captureMode": "NONE", "hosts": ["./*"]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews"},
         "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                  {"name": "v2", "labels": {"version": "v2"}}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "outlier"},
         "spec": {"host": "outlier", "trafficPolicy": {
             "loadBalancer": {"simple": "ROUND_ROBIN"},
             "outlierDetection": {"consecutive5xxErrors": 1, "interval": "10s", "baseEjectionTime": "5m",
                                  "maxEjectionPercent": 100}}}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "pool"},
         "spec": {"host": "pool", "trafficPolicy": {"connectionPool": {
             "tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1, "http2MaxRequests": 1}}}}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},
         "spec": {"hosts": ["reviews"], "http": [
             {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
              "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
             {"match": [{"uri": {"prefix": "/split"}}], "route": [
                 {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                 {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}]},
             {"match": [{"uri": {"prefix": "/mirror"}}], "route": [{"destination": {"host": "reviews", "subset": "v1"}}],
              "mirror": {"host": "reviews", "subset": "v2"}, "mirrorPercentage": {"value": 100.0}},
             {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "testapp"},
         "spec": {"hosts": ["testapp"], "http": [
             {"match": [{"uri": {"prefix": "/fail-once"}}], "retries": {"attempts": 2, "retryOn": "5xx"},
              "route": [{"destination": {"host": "testapp"}}]},
             {"match": [{"uri": {"prefix": "/sleep"}}], "timeout": "0.2s", "retries": {"attempts": 0},
              "route": [{"destination": {"host": "testapp"}}]},
             {"match": [{"uri": {"prefix": "/abort"}}], "retries": {"attempts": 0},
              "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 30}}},
              "route": [{"destination": {"host": "testapp"}}]},
             {"match": [{"uri": {"prefix": "/delay"}}],
              "fault": {"delay": {"fixedDelay": "0.001s", "percentage": {"value": 40}}},
              "route": [{"destination": {"host": "testapp"}}]},
             {"match": [{"uri": {"prefix": "/old"}}], "redirect": {"uri": "/new", "authority": "elsewhere"}},
             {"match": [{"uri": {"prefix": "/v1api"}}], "rewrite": {"uri": "/api", "authority": "rewritten"},
              "route": [{"destination": {"host": "testapp"}}]},
             {"route": [{"destination": {"host": "testapp"}}]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "pool"},
         "spec": {"hosts": ["pool"], "http": [{"retries": {"attempts": 0}, "route": [{"destination": {"host": "pool"}}]}]}},
    ]
    return yaml.safe_dump_all(docs)


def _node(envoy: EnvoyProcess) -> base_pb2.Node:
    return ParseDict(envoy.bootstrap["node"], base_pb2.Node(), ignore_unknown_fields=True)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("mesh")
    apps = {name: FastUpstream(name) for name in WORKLOADS}
    envoys: list[EnvoyProcess] = []
    with apps["reviews-v1"], apps["reviews-v2"], apps["testapp-v1"], xds_server_thread() as xds:
        try:
            ctx = push_context(
                snapshot_of(load_documents(_mesh_yaml({n: a.port for n, a in apps.items()}))), MeshConfig()
            )
            specs = [("client-0", {"app": "client"}, "127.0.213.2")] + [
                (name, labels, addr) for name, (labels, addr) in WORKLOADS.items()
            ]
            for pod, labels, addr in specs:
                envoy = EnvoyProcess.for_xds(
                    workdir, xds_port=xds.port, name=pod, pod=pod, ip=addr, labels=labels,
                    extra_metadata={"INTERCEPTION_MODE": "NONE"},
                )
                # This xDS server serves no SDS: the proxies hold no certificate (plaintext mesh).
                proxy = dataclasses.replace(parse_node(_node(envoy)), has_certificate=False)
                xds.set_snapshot(envoy.node_id, translate(ctx, proxy))
                envoys.append(envoy.start())
            for envoy in envoys:
                envoy.wait_ready()
            yield {"apps": apps, "client": envoys[0], "envoys": envoys}
        finally:
            for envoy in envoys:
                envoy.stop()


def _connect() -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection(CLIENT_ADDR, PORT, timeout=10)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def request(host: str, path: str = "/", headers: dict[str, str] | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    c = conn or _connect()
    try:
        c.request("GET", path, headers={"host": host, **(headers or {})})
        resp = c.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        if own:
            c.close()


def many(host: str, path: str, n: int, headers: dict[str, str] | None = None) -> list[tuple[int, str]]:
    out = []
    conn = _connect()
    try:
        for _ in range(n):
            try:
                status, h, _ = request(host, path, headers, conn)
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                conn = _connect()
                status, h, _ = request(host, path, headers, conn)
            out.append((status, h.get("x-upstream", "")))
    finally:
        conn.close()
    return out


def test_end_user_jason_reaches_v2_every_time(mesh: dict) -> None:
    assert {u for _, u in many("reviews", "/", 50, {"end-user": "jason"})} == {"reviews-v2"}
    assert {u for _, u in many("reviews", "/", 20)} == {"reviews-v1"}


def test_90_10_split_over_2000_requests(mesh: dict) -> None:
    n = 2000
    counts = Counter(u for _, u in many("reviews", "/split", n))
    assert counts["reviews-v1"] + counts["reviews-v2"] == n
    assert abs(counts["reviews-v2"] - 0.1 * n) <= 5 * math.sqrt(n * 0.1 * 0.9), counts


def test_fault_abort_and_delay_percentages(mesh: dict) -> None:
    n = 400
    aborted = sum(status == 418 for status, _ in many("testapp", "/abort", n))
    assert abs(aborted - 0.3 * n) <= 5 * math.sqrt(n * 0.3 * 0.7), aborted
    stat = "http.outbound_127.0.213.1_9080.fault.delays_injected"
    before = mesh["client"].stat(stat) or 0
    assert all(status == 200 for status, _ in many("testapp", "/delay", n))
    delayed = (mesh["client"].stat(stat) or 0) - before
    assert abs(delayed - 0.4 * n) <= 5 * math.sqrt(n * 0.4 * 0.6), delayed


def test_retry_hides_one_failure(mesh: dict) -> None:
    for i in range(5):
        status, _, _ = request("testapp", f"/fail-once/key-{i}")
        assert status == 200
    assert mesh["apps"]["testapp-v1"].paths["/fail-once"] == 10  # each key: a 503, then the retry


def test_timeout_fires(mesh: dict) -> None:
    status, _, body = request("testapp", "/sleep/3000")
    assert status == 504 and b"upstream request timeout" in body


def test_outlier_detection_ejects_failing_endpoint(mesh: dict) -> None:
    # reviews-v2 answers 500 on /bad-on/reviews-v2: one 5xx ejects it; then only v1 answers.
    results = many("outlier", "/bad-on/reviews-v2", 30)
    assert any(status == 500 for status, _ in results[:5])
    assert all(status == 200 and u == "reviews-v1" for status, u in results[10:]), results
    assert (mesh["client"].stat("cluster.outbound|9080||outlier.default.svc.cluster.local.outlier_detection.ejections_enforced_total") or 0) >= 1


def test_connection_pool_limit_returns_503_overflow(mesh: dict) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: request("pool", "/sleep/300")[:2], range(8)))
    statuses = Counter(s for s, _ in results)
    assert statuses[200] >= 1 and statuses[503] >= 1, statuses
    assert any(h.get("x-envoy-overloaded") == "true" for s, h in results if s == 503)


def test_mirror_receives_copies(mesh: dict) -> None:
    before = mesh["apps"]["reviews-v2"].paths["/mirror"]
    assert {u for _, u in many("reviews", "/mirror", 10)} == {"reviews-v1"}
    # Mirrored requests are fire-and-forget: wait (bounded) for them to land.
    import time

    deadline = time.monotonic() + 10
    while mesh["apps"]["reviews-v2"].paths["/mirror"] - before < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mesh["apps"]["reviews-v2"].paths["/mirror"] - before == 10


def test_redirect_and_rewrite(mesh: dict) -> None:
    status, headers, _ = request("testapp", "/old/page")
    assert status == 301 and headers["location"].startswith("http://elsewhere/new")
    import json

    status, _, body = request("testapp", "/v1api/x")
    echoed = json.loads(body)
    assert status == 200 and echoed["path"] == "/api/x" and echoed["headers"]["host"] == "rewritten"
