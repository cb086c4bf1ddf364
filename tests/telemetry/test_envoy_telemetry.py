"""Telemetry through real Envoys fed by our ADS server: access-log lines, Zipkin spans, stats.

Topology (no iptables): two client sidecars whose egress listeners bind 127.0.215.1:9080
and 127.0.215.2:9080, and reviews-v1 behind a sidecar whose ingress binds 127.0.215.11:9080.
The mesh config logs to one file (accessLogFile) and traces to a Zipkin collector on
loopback (a plain host:port provider). Telemetry resources: the namespace samples 100% with
a custom tag; client-b samples 0% and has access logs disabled.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.core.v3 import base_pb2
from google.protobuf.json_format import ParseDict

from controlplane.model.mesh import mesh_config_from_yaml
from controlplane.translate import parse_node, push_context, translate
from controlplane.translate.bootstrap import render_bootstrap
from tests.harness.envoy import EnvoyProcess, default_params
from tests.harness.ports import free_port
from tests.harness.wait import wait_for
from tests.telemetry.zipkin_collector import ZipkinCollector
from tests.translate.fast_upstream import FastUpstream
from tests.translate.support import load_documents, snapshot_of
from tests.translate.xds_thread import xds_server_thread

pytestmark = [pytest.mark.envoy]
PORT = 9080
CLIENTS = {"client-a": "127.0.215.1", "client-b": "127.0.215.2"}
REVIEWS = "127.0.215.11"
REVIEWS_CLUSTER = "outbound|9080||reviews.default.svc.cluster.local"


def _inputs(app_port: int) -> list[Any]:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "reviews"},
            "spec": {
                "clusterIP": "10.96.21.5",
                "selector": {"app": "reviews"},
                "ports": [{"name": "http", "port": PORT}],
            },
        },
        # the Pod the slice names (an endpoint whose Pod is unknown is left out, as in Istio)
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "reviews-v1", "labels": {"app": "reviews", "version": "v1"}},
            "status": {"podIP": REVIEWS},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "reviews-x", "labels": {"kubernetes.io/service-name": "reviews"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": PORT}],
            "endpoints": [
                {"addresses": [REVIEWS], "targetRef": {"kind": "Pod", "name": "reviews-v1"}}
            ],
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Sidecar",
            "metadata": {"name": "reviews"},
            "spec": {
                "workloadSelector": {"labels": {"app": "reviews"}},
                "ingress": [
                    {
                        "port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                        "captureMode": "NONE",
                        "defaultEndpoint": f"127.0.0.1:{app_port}",
                    }
                ],
                "egress": [{"hosts": ["./*"]}],
            },
        },
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": {"name": "namespace"},
            "spec": {
                "tracing": [
                    {
                        "randomSamplingPercentage": 100,
                        "customTags": {"mesh_test": {"literal": {"value": "telemetry"}}},
                    }
                ]
            },
        },
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": {"name": "client-b"},
            "spec": {
                "selector": {"matchLabels": {"app": "client-b"}},
                "tracing": [{"randomSamplingPercentage": 0}],
                "accessLogging": [{"disabled": True}],
            },
        },
    ]
    for name, addr in CLIENTS.items():
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "Sidecar",
                "metadata": {"name": name},
                "spec": {
                    "workloadSelector": {"labels": {"app": name}},
                    "egress": [
                        {
                            "port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                            "bind": addr,
                            "captureMode": "NONE",
                            "hosts": ["./*"],
                        }
                    ],
                },
            }
        )
    return load_documents(yaml.safe_dump_all(docs))


def _envoy(workdir: Path, xds_port: int, pod: str, ip: str, labels: dict[str, str]) -> EnvoyProcess:
    params = default_params(
        xds_port=xds_port,
        admin_port=free_port(),
        pod=pod,
        ip=ip,
        labels=labels,
        stats_port=free_port(),
        extra_metadata={"INTERCEPTION_MODE": "NONE"},
    )
    bootstrap = render_bootstrap(params)
    # Report every span at once (Envoy batches 5 by default) so tests need not wait long.
    bootstrap["layered_runtime"]["layers"][0]["static_layer"]["tracing"] = {
        "zipkin": {"min_flush_spans": 1}
    }
    return EnvoyProcess(
        bootstrap, workdir, name=pod, extra_args=("--file-flush-interval-msec", "50")
    )


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("telemetry")
    access_log = workdir / "access.log"
    envoys: dict[str, EnvoyProcess] = {}
    with (
        FastUpstream("reviews-v1") as app,
        ZipkinCollector() as collector,
        xds_server_thread() as xds,
    ):
        try:
            mesh_config = mesh_config_from_yaml(f"""
accessLogFile: {access_log}
extensionProviders:
- name: zipkin
  zipkin: {{service: 127.0.0.1, port: {collector.port}}}
defaultProviders:
  tracing: [zipkin]
""")
            ctx = push_context(snapshot_of(_inputs(app.port)), mesh_config)
            specs = [(n, a, {"app": n}) for n, a in CLIENTS.items()]
            specs.append(("reviews-v1", REVIEWS, {"app": "reviews", "version": "v1"}))
            for pod, addr, labels in specs:
                envoy = envoys[pod] = _envoy(workdir, xds.port, pod, addr, labels)
                node = ParseDict(
                    envoy.bootstrap["node"], base_pb2.Node(), ignore_unknown_fields=True
                )
                # No SDS in this test: plaintext between sidecars (mTLS is tested elsewhere).
                proxy = dataclasses.replace(parse_node(node), has_certificate=False)
                xds.set_snapshot(envoy.node_id, translate(ctx, proxy))
                envoy.start()
            for envoy in envoys.values():
                envoy.wait_ready()
            yield {"envoys": envoys, "collector": collector, "log": access_log, "app": app}
        finally:
            for envoy in envoys.values():
                envoy.stop()


def get(client: str, path: str) -> int:
    conn = http.client.HTTPConnection(CLIENTS[client], PORT, timeout=10)
    try:
        conn.request("GET", path, headers={"host": "reviews"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def log_lines(mesh: dict[str, Any], fragment: str) -> list[str]:
    path: Path = mesh["log"]
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if fragment in line]


def _outbound(lines: list[str]) -> list[str]:
    return [line for line in lines if REVIEWS_CLUSTER in line]


def _inbound(lines: list[str]) -> list[str]:
    return [line for line in lines if " inbound|9080|| " in line]


def test_every_request_logs_a_line_on_both_sidecars_in_istio_format(mesh: dict) -> None:
    n = 4
    assert [get("client-a", f"/logged/{i}") for i in range(n)] == [200] * n
    lines = wait_for(
        lambda: len(log_lines(mesh, "/logged/")) >= 2 * n and log_lines(mesh, "/logged/"),
        message="access log lines",
    )
    assert len(_outbound(lines)) == n and len(_inbound(lines)) == n
    for i in range(n):
        [line] = [x for x in _outbound(lines) if f"/logged/{i} " in x]
        # [START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS ...
        assert (
            line.startswith("[") and f'"GET /logged/{i} HTTP/1.1" 200 - via_upstream - "-"' in line
        )
        assert '"reviews"' in line and f'"{REVIEWS}:{PORT}"' in line  # authority, upstream host


def test_full_sampling_sends_client_and_server_spans_to_zipkin(mesh: dict) -> None:
    collector: ZipkinCollector = mesh["collector"]
    n = 3
    assert [get("client-a", f"/traced/{i}") for i in range(n)] == [200] * n

    def traced(service: str) -> list[dict[str, Any]]:
        return [
            s
            for s in collector.spans_of(service)
            if "/traced/" in s.get("tags", {}).get("http.url", "")
        ]

    clients = wait_for(
        lambda: len(traced("client-a.default")) >= n and traced("client-a.default"),
        message="client spans",
    )
    servers = wait_for(
        lambda: len(traced("reviews-v1.default")) >= n and traced("reviews-v1.default"),
        message="server spans",
    )
    assert len(clients) == n and len(servers) == n
    assert {s["kind"] for s in clients} == {"CLIENT"} and {s["kind"] for s in servers} == {"SERVER"}
    assert {s["tags"]["upstream_cluster"] for s in clients} == {REVIEWS_CLUSTER}
    assert {s["tags"]["mesh_test"] for s in clients + servers} == {"telemetry"}
    assert {s["traceId"] for s in servers} == {
        s["traceId"] for s in clients
    }  # one trace per request
    assert len({s["traceId"] for s in clients}) == n


def test_zero_sampling_and_disabled_logs_for_one_workload_only(mesh: dict) -> None:
    collector: ZipkinCollector = mesh["collector"]
    client_b: EnvoyProcess = mesh["envoys"]["client-b"]
    n = 4
    assert [get("client-b", f"/quiet/{i}") for i in range(n)] == [200] * n
    # reviews-v1 still logs (inbound); then a request through client-a is still logged outbound.
    wait_for(lambda: len(_inbound(log_lines(mesh, "/quiet/"))) == n, message="server-side lines")
    assert get("client-a", "/after-quiet") == 200
    wait_for(lambda: _outbound(log_lines(mesh, "/after-quiet")), message="client-a line")
    assert _outbound(log_lines(mesh, "/quiet/")) == []
    stats = client_b.stats()
    assert stats.get("http.outbound_127.0.215.2_9080.tracing.not_traceable") == n
    assert stats.get("http.outbound_127.0.215.2_9080.tracing.random_sampling", 0) == 0
    assert stats.get("tracing.zipkin.spans_sent", 0) == 0
    assert collector.spans_of("client-b.default") == []
    assert not [s for s in collector.spans() if "/quiet/" in s.get("tags", {}).get("http.url", "")]
    listeners = json.dumps(client_b.config_dump("dynamic_listeners"))
    assert "envoy.access_loggers.file" not in listeners and "random_sampling" in listeners


_SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def prometheus_samples(port: int) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) as Envoy prints them (prometheus_client's parser would rename
    counters to <name>_total, which clashes with Envoy's own upstream_rq_total)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/stats/prometheus")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out.append((m[1], dict(_LABEL.findall(m[2])), float(m[3])))
    return out


def test_prometheus_stats_break_down_by_destination_and_workload(mesh: dict) -> None:
    assert get("client-a", "/metrics-probe") == 200
    stats_port = mesh["envoys"]["client-a"].bootstrap["static_resources"]["listeners"][0][
        "address"
    ]["socket_address"]["port_value"]

    def upstream_200() -> list[tuple[str, dict[str, str], float]]:
        return [
            s
            for s in prometheus_samples(stats_port)
            if s[0] == "envoy_cluster_upstream_rq"
            and s[1].get("cluster_name") == REVIEWS_CLUSTER
            and s[1].get("response_code") == "200"
        ]

    [(_, labels, value)] = wait_for(upstream_200, message="upstream_rq 200 for reviews")
    assert value >= 1
    assert labels["destination_service"] == "reviews.default.svc.cluster.local"
    assert labels["destination_service_name"] == "reviews"
    assert labels["destination_service_namespace"] == "default"
    assert labels["destination_port"] == "9080"
    assert "destination_subset" not in labels
    assert labels["proxy_workload"] == "client-a" and labels["proxy_app"] == "client-a"
    assert labels["proxy_namespace"] == "default"
    # The server side: inbound|9080|| counted on reviews-v1, labelled with its own workload.
    reviews_port = mesh["envoys"]["reviews-v1"].bootstrap["static_resources"]["listeners"][0][
        "address"
    ]["socket_address"]["port_value"]
    inbound = wait_for(
        lambda: [
            s
            for s in prometheus_samples(reviews_port)
            if s[0] == "envoy_cluster_upstream_rq" and s[1].get("cluster_name") == "inbound|9080||"
        ],
        message="inbound stats",
    )
    assert {
        (s[1]["proxy_workload"], s[1]["proxy_version"], s[1]["destination_port"]) for s in inbound
    } == {("reviews-v1", "v1", "9080")}
