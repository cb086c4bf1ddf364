"""What one small push costs the xDS server per stream, in-process (no gRPC, no sockets).

P streams of one group hold CDS (C EDS clusters), EDS (every cluster, as Envoy asks), one
listener and one route configuration, as the load benchmark's proxies do. Each change then
replaces one ClusterLoadAssignment (``SnapshotCache.update_resources``, what an endpoint
push does), every stream is sent that one-resource EDS response and its client ACKs it with
the whole subscription (about C names), given to the stream as bytes as gRPC gives them.
The figure is the process CPU per response of the whole round: the stream's wake-up, the
push slot, planning and framing the response, parsing and handling the ACK, and the stream
settling (the ``on_stream_settled`` hook is a no-op here). The clients' own part (decoding
the response, framing the ACK's bytes) is measured alone and taken out.

``--change new-cluster`` is a full push's instead (a new service): each change adds a cluster
and its assignment and replaces the route configuration, so every stream is sent the whole
CDS set (the group's shared bytes), asked by its client for EDS again with the new name
among the others (as Envoy does once the new cluster is there), and sent that assignment and
the route configuration: three responses per stream, and the ACKs of each.

    .venv/bin/python -m benchmarks.stream_cost [--streams 300] [--clusters 1400] [--changes 20]
        [--mode sotw|delta] [--throttle 25] [--change endpoint|new-cluster]

This is the per-response cost ``benchmarks/floor_server.py`` compares with: the floor's is a
join of pre-framed bytes and a queue put.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

from envoy.service.discovery.v3 import discovery_pb2

from benchmarks import wire
from controlplane.xds import SnapshotCache, XdsCore, XdsLimits, types
from controlplane.xds.resources import PreparedResource, prepare
from tests.harness import xds_resources as r

GROUP = "bench"


_ROUTE_NAMES = {types.ROUTE: wire.string_field(3, "8080")}  # an RDS ACK names what it asked for


def _names(count: int) -> list[str]:
    return [f"outbound|8080||svc-{i}.ns-{i % 10}.svc.cluster.local" for i in range(count)]


def _assignment(name: str, generation: int):
    return r.assignment(name, [(f"10.1.{generation % 250}.{generation // 250 % 250}", 8080)])


def _snapshot(names: list[str]) -> dict:
    return r.snapshot(
        clusters=[r.cluster(n) for n in names],
        endpoints=[_assignment(n, 0) for n in names],
        listeners=[r.http_listener("0.0.0.0_8080", "0.0.0.0", 8080, "8080")],
        routes=[r.route_config("8080", [("/", names[0])])],
    )


def _prepared_snapshot(names: list[str]) -> dict[str, tuple[PreparedResource, ...]]:
    """``_snapshot`` serialized ahead (the push's own work stays out of the figure), its
    route configuration routing to the last of ``names``."""
    resources = _snapshot(names)
    resources[types.ROUTE] = [r.route_config("8080", [("/", names[-1])])]
    return {type_url: tuple(prepare(type_url, m) for m in items) for type_url, items in resources.items()}


class Client:
    """One proxy: subscribes as Envoy does and ACKs every response with its subscription."""

    def __init__(self, core: XdsCore, names: list[str], delta: bool) -> None:
        self.delta = delta
        self.names = names
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.received = 0
        self.last: dict[str, bytes] = {}  # the last response of each type, for the clients' share of the cost
        self.resubscribe = False
        self.round: Round | None = None
        self._parse_response = (
            discovery_pb2.DeltaDiscoveryResponse if delta else discovery_pb2.DiscoveryResponse
        ).FromString
        # An ACK's subscription bytes (SotW: every name again), framed once.
        self._eds_names = b"".join(wire.string_field(3, n) for n in names)
        self.eds_ack = ("", "")  # SotW: the version and nonce of the last EDS response
        self.responses = (core.delta if delta else core.sotw)(self._requests())

    def subscribe(self, names: list[str], framed: bytes) -> None:
        """Ask for EDS of ``names`` (``framed``: their subscription bytes, shared) once the
        next CDS response comes, as Envoy does after a cluster was added."""
        self.names, self._eds_names = names, framed
        self.resubscribe = True

    async def _requests(self) -> AsyncIterator:
        while (raw := await self.queue.get()) is not None:
            yield raw  # as XdsServer's handlers are given them: parsed by the stream

    def request(self, type_url: str, names: list[str], nonce: str = "", version: str = "",
                first: bool = False) -> bytes:
        if self.delta:
            message = discovery_pb2.DeltaDiscoveryRequest(
                type_url=type_url, response_nonce=nonce,
                resource_names_subscribe=names if not nonce else ())
        else:
            message = discovery_pb2.DiscoveryRequest(
                type_url=type_url, resource_names=names, response_nonce=nonce,
                version_info=version)
        if first:
            message.node.id = "sidecar~10.0.0.1~app-0.ns-0~ns-0.svc.cluster.local"
        return message.SerializeToString()

    def ack(self, response) -> bytes:
        if self.delta:
            return discovery_pb2.DeltaDiscoveryRequest(
                type_url=response.type_url, response_nonce=response.nonce).SerializeToString()
        body = self._eds_names if response.type_url == types.ENDPOINT else _ROUTE_NAMES.get(response.type_url, b"")
        return (wire.string_field(1, response.version_info) + body
                + wire.string_field(4, response.type_url) + wire.string_field(5, response.nonce))

    async def run(self) -> None:
        self.queue.put_nowait(self.request(types.CLUSTER, [], first=True))
        async for raw in self.responses:
            response = self._parse_response(raw)
            self.last[response.type_url] = raw
            self.queue.put_nowait(self.ack(response))
            if response.type_url == types.ENDPOINT and not self.delta:
                self.eds_ack = (response.version_info, response.nonce)
            if response.type_url == types.CLUSTER and self.resubscribe:
                self.resubscribe = False
                if self.delta:
                    self.queue.put_nowait(self.request(types.ENDPOINT, self.names[-1:]))
                else:
                    version, nonce = self.eds_ack
                    self.queue.put_nowait(wire.string_field(1, version) + self._eds_names
                                          + wire.string_field(4, types.ENDPOINT) + wire.string_field(5, nonce))
            if response.type_url == types.CLUSTER and self.received == 0:
                self.queue.put_nowait(self.request(types.ENDPOINT, self.names))
                self.queue.put_nowait(self.request(types.LISTENER, []))
                self.queue.put_nowait(self.request(types.ROUTE, ["8080"]))
            self.received += 1
            if self.round is not None and self.received == self.round.expected:
                self.round.reached()


class Round:
    """Waits until every client received ``expected`` responses (one event, no task per
    client: the round's own cost stays out of the figure)."""

    def __init__(self, clients: list[Client], expected: int) -> None:
        self.expected = expected
        self.missing = sum(1 for c in clients if c.received < expected)
        self.done = asyncio.Event()
        for client in clients:
            client.round = self
        if not self.missing:
            self.done.set()

    def reached(self) -> None:
        self.missing -= 1
        if not self.missing:
            self.done.set()


async def _until(clients: list[Client], expected: int) -> None:
    await asyncio.wait_for(Round(clients, expected).done.wait(), 120)


async def _settled(core: XdsCore, count: int) -> None:
    while sum(1 for s in core.streams.values() if s.settled) < count:
        await asyncio.sleep(0.001)


def _client_cost_us(client: Client, raw: bytes, repeat: int = 2000) -> float:
    """The client's part of one response: decode it and frame the ACK."""
    repeat = max(10, min(repeat, repeat * 10_000 // max(len(raw), 1)))  # a CDS set is large
    started = time.process_time()
    for _ in range(repeat):
        client.ack(client._parse_response(raw))
    return (time.process_time() - started) / repeat * 1e6


async def measure(streams: int, clusters: int, changes: int, delta: bool,
                  throttle: int, new_clusters: bool = False) -> dict[str, float]:
    names = _names(clusters)
    # a new cluster per change: its names, their subscription bytes and its snapshot, made ahead
    grown = [_names(clusters + n) for n in range(1, changes + 1)] if new_clusters else []
    framed = [b"".join(wire.string_field(3, n) for n in more) for more in grown]
    snapshots = [_prepared_snapshot(more) for more in grown]
    cache = SnapshotCache()
    cache.set_snapshot(GROUP, _snapshot(names))
    core = XdsCore(cache, group_of=lambda node, identity: GROUP,
                   limits=XdsLimits(max_concurrent_pushes=throttle, max_streams_per_peer=0,
                                    new_streams_per_second=0))
    clients = [Client(core, names, delta) for _ in range(streams)]
    connected_cpu = time.process_time()
    tasks = [asyncio.create_task(c.run()) for c in clients]
    try:
        await _until(clients, 4)  # CDS, EDS, LDS, RDS
        await _settled(core, streams)
        connected_cpu = time.process_time() - connected_cpu
        started_cpu, started = time.process_time(), time.perf_counter()
        per_change = 3 if new_clusters else 1  # CDS, EDS, RDS; or EDS
        for generation in range(1, changes + 1):
            if new_clusters:
                for client in clients:
                    client.subscribe(grown[generation - 1], framed[generation - 1])
                cache.set_snapshot(GROUP, snapshots[generation - 1])
            else:
                name = names[generation * 7 % clusters]
                cache.update_resources(GROUP, types.ENDPOINT, [_assignment(name, generation)])
            await _until(clients, 4 + generation * per_change)
            await _settled(core, streams)
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
        # the responses of one change: the last of each type it sends
        sent = (types.CLUSTER, types.ENDPOINT, types.ROUTE) if new_clusters else (types.ENDPOINT,)
        client_us = sum(_client_cost_us(clients[0], clients[0].last[t]) for t in sent) / len(sent)
    finally:
        for client in clients:
            client.queue.put_nowait(None)
        await asyncio.gather(*tasks, return_exceptions=True)
    responses = changes * streams * per_change
    return {"streams": streams, "responses": responses,
            "CPU us per response": cpu / responses * 1e6,
            "clients' part us": client_us,
            "server us per response": cpu / responses * 1e6 - client_us,
            "wall ms per change": wall / changes * 1000,
            # a cold start's share: each stream opened and sent its first four responses
            "first responses CPU us per stream": connected_cpu / streams * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--clusters", type=int, default=1400)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--mode", choices=("sotw", "delta"), default="sotw")
    parser.add_argument("--throttle", type=int, default=XdsLimits().max_concurrent_pushes)
    parser.add_argument("--change", choices=("endpoint", "new-cluster"), default="endpoint")
    args = parser.parse_args()
    row = asyncio.run(measure(args.streams, args.clusters, args.changes,
                              args.mode == "delta", args.throttle, args.change == "new-cluster"))
    print(f"mode={args.mode} throttle={args.throttle} clusters={args.clusters} change={args.change}")
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(f"{v:,.1f}" for v in row.values()) + " |")


if __name__ == "__main__":
    main()
