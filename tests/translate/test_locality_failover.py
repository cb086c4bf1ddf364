"""Locality failover through a real Envoy: local zone first, then the region, then the
failover region, then the rest; each step once outlier detection ejects what came before.

Topology (no iptables): a client sidecar bootstrapped in us-east/us-east-1a whose egress
listener binds 127.0.216.1:9080; five apps on 127.0.216.1x, each a WorkloadEntry behind the
Service ``backend``: two in the client's zone, one in another zone of its region, one in
eu-west (the DestinationRule's failover target) and one in ap-south. The apps are the
endpoints themselves (no server-side sidecars): only the client's balancing is under test.
"""

from __future__ import annotations

import dataclasses
import http.client
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.core.v3 import base_pb2
from google.protobuf.json_format import ParseDict

from controlplane.translate import Locality, MeshConfig, parse_node, push_context, translate
from tests.harness.envoy import EnvoyProcess
from tests.harness.wait import wait_for
from tests.translate.fast_upstream import FastUpstream
from tests.translate.support import load_documents, snapshot_of
from tests.translate.xds_thread import xds_server_thread

pytestmark = [pytest.mark.envoy, pytest.mark.slow]
CLIENT_BIND = "127.0.216.1"
PORT = 9080
CLUSTER = "outbound|9080||backend.default.svc.cluster.local"
CLIENT_LOCALITY = Locality("us-east", "us-east-1a")
# name: (address, how the WorkloadEntry says where it is)
APPS: dict[str, tuple[str, dict[str, Any]]] = {
    "us-east-1a-1": ("127.0.216.11", {"locality": "us-east/us-east-1a"}),
    "us-east-1a-2": ("127.0.216.12", {"labels": {"istio-locality": "us-east.us-east-1a"}}),
    "us-east-1b": ("127.0.216.13", {"locality": "us-east/us-east-1b"}),
    "eu-west-1a": ("127.0.216.14", {"labels": {"topology.istio.io/locality": "eu-west.eu-west-1a"}}),
    "ap-south-1a": ("127.0.216.15", {"locality": "ap-south/ap-south-1a"}),
}
LOCAL = {"us-east-1a-1", "us-east-1a-2"}


def _mesh_yaml(ports: dict[str, int]) -> str:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "backend"},
         "spec": {"clusterIP": "10.96.16.1", "selector": {"app": "backend"},
                  "ports": [{"name": "http", "port": PORT}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "client"},
         "spec": {"workloadSelector": {"labels": {"app": "client"}},
                  "egress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                              "bind": CLIENT_BIND, "captureMode": "NONE", "hosts": ["./*"]}]}},
        # What a new user writes: failover from us-east to eu-west, with the outlier detection
        # that Istio requires before it applies any locality priority.
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "backend"},
         "spec": {"host": "backend", "trafficPolicy": {
             "loadBalancer": {"simple": "ROUND_ROBIN", "localityLbSetting": {
                 "enabled": True, "failover": [{"from": "us-east", "to": "eu-west"}]}},
             "outlierDetection": {"consecutive5xxErrors": 1, "interval": "1s", "baseEjectionTime": "5m",
                                  "maxEjectionPercent": 100}}}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "backend"},
         "spec": {"hosts": ["backend"], "http": [{"retries": {"attempts": 0},
                                                  "route": [{"destination": {"host": "backend"}}]}]}},
    ]
    for name, (address, where) in APPS.items():
        spec = {"address": address, "ports": {"http": ports[name]},
                "labels": {"app": "backend", **where.get("labels", {})}}
        if "locality" in where:
            spec["locality"] = where["locality"]
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
                     "metadata": {"name": name}, "spec": spec})
    return yaml.safe_dump_all(docs)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    workdir: Path = tmp_path_factory.mktemp("locality")
    with ExitStack() as stack:
        apps = {name: stack.enter_context(FastUpstream(name, host=addr)) for name, (addr, _) in APPS.items()}
        xds = stack.enter_context(xds_server_thread())
        ctx = push_context(snapshot_of(load_documents(_mesh_yaml({n: a.port for n, a in apps.items()}))),
                           MeshConfig())
        envoy = EnvoyProcess.for_xds(
            workdir, xds_port=xds.port, name="client-0", pod="client-0", ip="127.0.216.2",
            labels={"app": "client"}, locality=CLIENT_LOCALITY, extra_metadata={"INTERCEPTION_MODE": "NONE"},
        )
        stack.callback(envoy.stop)  # registered before start: stops even if start-up fails
        node = ParseDict(envoy.bootstrap["node"], base_pb2.Node(), ignore_unknown_fields=True)
        proxy = dataclasses.replace(parse_node(node), has_certificate=False)  # no SDS here
        assert proxy.locality == CLIENT_LOCALITY, "the bootstrap's node.locality is the proxy's"
        xds.set_snapshot(envoy.node_id, translate(ctx, proxy))
        envoy.start().wait_ready()
        yield envoy


def _served(path: str, n: int) -> list[tuple[int, str]]:
    """Status and serving app of ``n`` requests through the client sidecar."""
    out = []
    for _ in range(n):
        conn = http.client.HTTPConnection(CLIENT_BIND, PORT, timeout=10)
        try:
            conn.request("GET", path, headers={"host": "backend"})
            resp = conn.getresponse()
            resp.read()
            out.append((resp.status, resp.getheader("x-upstream", "")))
        finally:
            conn.close()
    return out


def _eject(client: EnvoyProcess, failing: list[str]) -> str:
    """Make ``failing`` answer 500 until outlier detection has ejected them all and the
    worker's load balancer sends them nothing (Envoy merges health updates for up to
    ``update_merge_window``, 1 s, before workers see them)."""
    path = "/bad-on/" + ",".join(failing)
    stat = f"cluster.{CLUSTER}.outlier_detection.ejections_active"

    def ejected() -> bool:
        served = _served(path, 10)
        return (client.stat(stat) or 0) >= len(failing) and not any(u in failing for _, u in served)

    wait_for(ejected, message=f"{failing} ejected")
    return path


def test_local_zone_then_region_then_failover_region_then_the_rest(client: EnvoyProcess) -> None:
    # Everything healthy: every request stays in the client's own zone.
    first = _served("/", 20)
    assert all(status == 200 for status, _ in first), first
    counts = Counter(u for _, u in first)
    assert set(counts) == LOCAL and all(counts[a] > 0 for a in LOCAL), counts

    # The local zone fails: the other zone of the same region takes everything.
    path = _eject(client, sorted(LOCAL))
    assert Counter(u for s, u in _served(path, 20) if s == 200) == {"us-east-1b": 20}

    # The whole region fails: the failover region, not ap-south, takes everything.
    path = _eject(client, sorted(LOCAL | {"us-east-1b"}))
    assert Counter(u for s, u in _served(path, 20) if s == 200) == {"eu-west-1a": 20}

    # And when that fails too, what is left.
    path = _eject(client, sorted(LOCAL | {"us-east-1b", "eu-west-1a"}))
    assert Counter(u for s, u in _served(path, 20) if s == 200) == {"ap-south-1a": 20}
