"""VirtualService delegation through a real Envoy fed by our ADS server (no iptables).

A root VirtualService for ``reviews`` (namespace default) hands ``/v2`` to a delegate
VirtualService in namespace team-v2, which routes to subset v2; everything else goes to
v1. The client sidecar's egress listener binds 127.0.217.1:9080 and its Sidecar imports
only its own namespace (``./*``): the delegate needs no import of its own. The two
versions are apps on 127.0.217.11 and 127.0.217.12, reached directly (plaintext).
"""

from __future__ import annotations

import dataclasses
import http.client
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

pytestmark = [pytest.mark.envoy]
CLIENT_BIND = "127.0.217.1"
CLIENT_IP = "127.0.217.2"
APPS = {"reviews-v1": ("v1", "127.0.217.11"), "reviews-v2": ("v2", "127.0.217.12")}
PORT = 9080
NET = "networking.istio.io/v1"


def _config(app_ports: dict[str, int]) -> str:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews"},
         "spec": {"clusterIP": "10.96.17.1", "selector": {"app": "reviews"},
                  "ports": [{"name": "http", "port": PORT}]}},
    ]
    for name, (version, addr) in APPS.items():
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "labels": {"app": "reviews", "version": version}},
                     "status": {"podIP": addr}})
        docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "reviews"}},
                     "addressType": "IPv4", "ports": [{"name": "http", "port": app_ports[name]}],
                     "endpoints": [{"addresses": [addr], "targetRef": {"kind": "Pod", "name": name}}]})
    docs += [
        {"apiVersion": NET, "kind": "Sidecar", "metadata": {"name": "client"},
         "spec": {"workloadSelector": {"labels": {"app": "client"}},
                  "egress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"}, "bind": CLIENT_BIND,
                              "captureMode": "NONE", "hosts": ["./*"]}]}},
        {"apiVersion": NET, "kind": "DestinationRule", "metadata": {"name": "reviews"},
         "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                  {"name": "v2", "labels": {"version": "v2"}}]}},
        {"apiVersion": NET, "kind": "VirtualService", "metadata": {"name": "reviews"},
         "spec": {"hosts": ["reviews"], "http": [
             {"match": [{"uri": {"prefix": "/v2"}}], "delegate": {"name": "reviews-v2", "namespace": "team-v2"}},
             {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}},
        {"apiVersion": NET, "kind": "VirtualService", "metadata": {"name": "reviews-v2", "namespace": "team-v2"},
         "spec": {"exportTo": ["default"], "http": [
             {"route": [{"destination": {"host": "reviews.default.svc.cluster.local", "subset": "v2"}}]}]}},
    ]
    return yaml.safe_dump_all(docs)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    workdir: Path = tmp_path_factory.mktemp("delegation")
    apps = {name: FastUpstream(name, host=addr) for name, (_, addr) in APPS.items()}
    with apps["reviews-v1"], apps["reviews-v2"], xds_server_thread() as xds:
        ctx = push_context(snapshot_of(load_documents(_config({n: a.port for n, a in apps.items()}))), MeshConfig())
        envoy = EnvoyProcess.for_xds(
            workdir, xds_port=xds.port, name="client-0", pod="client-0", ip=CLIENT_IP,
            labels={"app": "client"}, extra_metadata={"INTERCEPTION_MODE": "NONE"},
        )
        try:
            node = ParseDict(envoy.bootstrap["node"], base_pb2.Node(), ignore_unknown_fields=True)
            # This xDS server serves no SDS: the proxy holds no certificate (plaintext).
            proxy = dataclasses.replace(parse_node(node), has_certificate=False)
            xds.set_snapshot(envoy.node_id, translate(ctx, proxy))
            envoy.start()
            envoy.wait_ready()
            yield envoy
        finally:
            envoy.stop()


def upstream_of(path: str) -> str:
    conn = http.client.HTTPConnection(CLIENT_BIND, PORT, timeout=10)
    try:
        conn.request("GET", path, headers={"host": "reviews"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, (path, resp.status)
        return resp.getheader("x-upstream", "")
    finally:
        conn.close()


def test_v2_prefix_reaches_v2_through_the_delegate(client: EnvoyProcess) -> None:
    for path in ("/v2", "/v2/reviews/1", "/v2/ratings?x=1"):
        assert upstream_of(path) == "reviews-v2", path


def test_other_paths_reach_v1(client: EnvoyProcess) -> None:
    for path in ("/", "/reviews/1", "/v1/reviews/2", "/other/v2"):
        assert upstream_of(path) == "reviews-v1", path


def test_envoy_accepted_every_update(client: EnvoyProcess) -> None:
    stats = client.stats()
    rejected = {k: v for k, v in stats.items() if k.endswith("update_rejected") and v}
    assert not rejected, rejected
