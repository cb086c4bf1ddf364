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

    .venv/bin/python -m benchmarks.stream_cost [--streams 300] [--clusters 1400] [--changes 20]
        [--mode sotw|delta] [--throttle 25]

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
from tests.harness import xds_resources as r

GROUP = "bench"


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


class Client:
    """One proxy: subscribes as Envoy does and ACKs every response with its subscription."""

    def __init__(self, core: XdsCore, names: list[str], delta: bool) -> None:
        self.delta = delta
        self.names = names
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.received = 0
        self.last = b""  # the last response, for the clients' share of the cost
        self.round: Round | None = None
        self._parse_response = (
            discovery_pb2.DeltaDiscoveryResponse if delta else discovery_pb2.DiscoveryResponse
        ).FromString
        # An ACK's subscription bytes (SotW: every name again), framed once.
        self._eds_names = b"".join(wire.string_field(3, n) for n in names)
        self.responses = (core.delta if delta else core.sotw)(self._requests())

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
        body = self._eds_names if response.type_url == types.ENDPOINT else b""
        return (wire.string_field(1, response.version_info) + body
                + wire.string_field(4, response.type_url) + wire.string_field(5, response.nonce))

    async def run(self) -> None:
        self.queue.put_nowait(self.request(types.CLUSTER, [], first=True))
        async for raw in self.responses:
            self.last, response = raw, self._parse_response(raw)
            self.queue.put_nowait(self.ack(response))
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
    started = time.process_time()
    for _ in range(repeat):
        client.ack(client._parse_response(raw))
    return (time.process_time() - started) / repeat * 1e6


async def measure(streams: int, clusters: int, changes: int, delta: bool,
                  throttle: int) -> dict[str, float]:
    names = _names(clusters)
    cache = SnapshotCache()
    cache.set_snapshot(GROUP, _snapshot(names))
    core = XdsCore(cache, group_of=lambda node, identity: GROUP,
                   limits=XdsLimits(max_concurrent_pushes=throttle, max_streams_per_peer=0,
                                    new_streams_per_second=0))
    clients = [Client(core, names, delta) for _ in range(streams)]
    tasks = [asyncio.create_task(c.run()) for c in clients]
    try:
        await _until(clients, 4)  # CDS, EDS, LDS, RDS
        await _settled(core, streams)
        started_cpu, started = time.process_time(), time.perf_counter()
        for generation in range(1, changes + 1):
            name = names[generation * 7 % clusters]
            cache.update_resources(GROUP, types.ENDPOINT, [_assignment(name, generation)])
            await _until(clients, 4 + generation)
            await _settled(core, streams)
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
        client_us = _client_cost_us(clients[0], clients[0].last)
    finally:
        for client in clients:
            client.queue.put_nowait(None)
        await asyncio.gather(*tasks, return_exceptions=True)
    responses = changes * streams
    return {"streams": streams, "responses": responses,
            "CPU us per response": cpu / responses * 1e6,
            "clients' part us": client_us,
            "server us per response": cpu / responses * 1e6 - client_us,
            "wall ms per change": wall / changes * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--clusters", type=int, default=1400)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--mode", choices=("sotw", "delta"), default="sotw")
    parser.add_argument("--throttle", type=int, default=XdsLimits().max_concurrent_pushes)
    args = parser.parse_args()
    row = asyncio.run(measure(args.streams, args.clusters, args.changes,
                              args.mode == "delta", args.throttle))
    print(f"mode={args.mode} throttle={args.throttle} clusters={args.clusters}")
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(f"{v:,.1f}" for v in row.values()) + " |")


if __name__ == "__main__":
    main()
