"""One endpoint change arrives from Kubernetes as several watch events (a new Pod, the
EndpointSlice naming it, the old Pod's deletion), over separate watches and so in any order.
The control plane pushes the first of them at once (a leading edge) and the rest after it:
every state a proxy is sent on the way must be right, and the last one must be the change.

The Kubernetes API is the test double (tests/kube_double/server.py); the control plane runs
in this process with its Kubernetes source, and a real gRPC ADS client reads what it sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.model.kubernetes import EndpointSlice
from controlplane.server.runtime import ControlPlane
from controlplane.server.settings import Settings
from controlplane.xds import types
from tests.harness.kube import KINDS, NAMESPACES, PODS, SECRETS, SERVICES, SLICES, kubeconfig
from tests.harness.ports import free_port
from tests.harness.xds_client import XdsClientStream
from tests.kube_double.server import KubeApiDouble

CLUSTER = "outbound|9080||reviews.default.svc.cluster.local"


def _pod(name: str, ip: str, version: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"app": "reviews", "version": version,
                                    "security.istio.io/tlsMode": "istio"}},
            "spec": {"serviceAccountName": "reviews"},
            "status": {"podIP": ip, "phase": "Running"}}


def _slice(*pods: tuple[str, str]) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "reviews-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "reviews"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 9080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "name": name, "namespace": "default"}}
                          for name, ip in pods]}


@dataclass(frozen=True)
class SentEndpoint:
    address: str
    tls_mode: str  # from its Pod's label: empty if it was built without its Pod


@dataclass
class Client:
    """Subscribes to the reviews cluster's endpoints and keeps every assignment it is sent."""

    stream: XdsClientStream
    sent: list[frozenset[SentEndpoint]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self) -> None:
        while True:
            response = await self.stream.recv()
            if response.type_url == types.ENDPOINT:
                for resource in response.resources:
                    assignment = endpoint_pb2.ClusterLoadAssignment()
                    resource.Unpack(assignment)
                    if assignment.cluster_name == CLUSTER:
                        self.sent.append(_endpoints(assignment))
                        self.changed.set()
            await self.stream.send(discovery_pb2.DiscoveryRequest(
                type_url=response.type_url, version_info=response.version_info,
                response_nonce=response.nonce,
                resource_names=[CLUSTER] if response.type_url == types.ENDPOINT else []))

    async def until(self, addresses: set[str], timeout: float = 10.0) -> None:
        async def arrived() -> None:
            while not self.sent or {e.address for e in self.sent[-1]} != addresses:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(arrived(), timeout)


def _endpoints(assignment: endpoint_pb2.ClusterLoadAssignment) -> frozenset[SentEndpoint]:
    found = set()
    for locality in assignment.endpoints:
        for lb in locality.lb_endpoints:
            metadata = lb.metadata.filter_metadata
            match = metadata["envoy.transport_socket_match"].fields \
                if "envoy.transport_socket_match" in metadata else {}
            found.add(SentEndpoint(
                lb.endpoint.address.socket_address.address,
                match["tlsMode"].string_value if "tlsMode" in match else "",
            ))
    return frozenset(found)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[tuple[KubeApiDouble, Client, ControlPlane]]:
    double = KubeApiDouble()
    for path in (NAMESPACES, SERVICES, SLICES, PODS, SECRETS):
        double.serve(path, *KINDS[path])
    double.upsert(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    double.upsert(SERVICES, {"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "reviews", "namespace": "default"},
                             "spec": {"clusterIP": "10.96.0.12", "selector": {"app": "reviews"},
                                      "ports": [{"name": "http", "port": 9080}]}})
    double.upsert(PODS, _pod("reviews-1", "10.0.0.1", "v1"))
    double.upsert(SLICES, _slice(("reviews-1", "10.0.0.1")))
    double.start()
    port = free_port()
    control_plane = ControlPlane(Settings(
        kubernetes=True, kubeconfig=kubeconfig(tmp_path / "kubeconfig", double.url),
        leader_election=False, ca_from_secret=False, ca_dir=tmp_path / "ca",
        xds_plaintext_port=port, xds_tls_port=None, monitoring_port=None,
    ))
    channel = None
    follower = None
    try:
        await control_plane.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stream = XdsClientStream(channel)
        await stream.send(discovery_pb2.DiscoveryRequest(
            type_url=types.CLUSTER,
            node=base_pb2.Node(id="sidecar~10.0.9.1~client.default~default.svc.cluster.local")))
        clusters = await stream.recv()
        names = set()
        for resource in clusters.resources:
            cluster = cluster_pb2.Cluster()
            resource.Unpack(cluster)
            names.add(cluster.name)
        assert CLUSTER in names
        await stream.send(discovery_pb2.DiscoveryRequest(
            type_url=types.CLUSTER, version_info=clusters.version_info, response_nonce=clusters.nonce))
        await stream.send(discovery_pb2.DiscoveryRequest(type_url=types.ENDPOINT, resource_names=[CLUSTER]))
        client = Client(stream)
        follower = asyncio.create_task(client.follow())
        await client.until({"10.0.0.1"})
        yield double, client, control_plane
    finally:
        if follower is not None:
            follower.cancel()
        if channel is not None:
            await channel.close()
        await control_plane.stop()
        double.stop()


def _store_slice(control_plane: ControlPlane) -> Any:
    return control_plane.store.snapshot.get_typed(EndpointSlice, "default", "reviews-1")


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "not reached"
        await asyncio.sleep(0.01)


def _complete(client: Client) -> None:
    """No endpoint was ever sent without its Pod: each had its Pod's tlsMode (without it, the
    client would call a sidecar in plaintext)."""
    for endpoints in client.sent:
        for endpoint in endpoints:
            assert endpoint.tls_mode == "istio", endpoint


async def test_a_slice_that_comes_before_its_pod_never_sends_the_endpoint_without_it(mesh) -> None:
    double, client, control_plane = mesh
    double.upsert(SLICES, _slice(("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2")))
    await _until(lambda: len(_store_slice(control_plane).endpoints) == 2)
    await asyncio.sleep(0.3)  # past any debounce: a push of the slice alone would be sent now
    double.upsert(PODS, _pod("reviews-2", "10.0.0.2", "v2"))
    await client.until({"10.0.0.1", "10.0.0.2"})
    _complete(client)
    assert {e.address for e in client.sent[-2]} == {"10.0.0.1"}, "left out until its Pod came"


@pytest.mark.parametrize("order", ["pod, slice, old pod deleted", "old pod deleted, slice, pod"])
async def test_each_order_of_one_changes_events_ends_in_the_change(mesh, order: str) -> None:
    """A burst of a change's events, in the order kubectl writes them or reversed: what is
    sent on the way is right, and the last assignment is the change."""
    double, client, _ = mesh
    writes = {
        "pod": lambda: double.upsert(PODS, _pod("reviews-2", "10.0.0.2", "v2")),
        "slice": lambda: double.upsert(SLICES, _slice(("reviews-2", "10.0.0.2"))),
        "old pod deleted": lambda: double.delete(PODS, "default", "reviews-1"),
    }
    for step in order.split(", "):
        writes[step]()
    await client.until({"10.0.0.2"})
    await asyncio.sleep(0.2)  # whatever comes after the change (a trailing push) comes now
    assert {e.address for e in client.sent[-1]} == {"10.0.0.2"}
    _complete(client)
