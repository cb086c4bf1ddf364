"""The floor: the least an ADS server can do to serve the same resources to the same clients.

No translation and no bookkeeping beyond what the protocol needs: resources arrive already
serialized from the coordinator (pickled batches on stdin, each an 8-byte length then the pickle),
are framed once into response fragments, and every response is a join of those bytes. Proxies are
grouped by ``node.cluster`` (``<workload>.<namespace>``), so each gets its group's resources.

    python -m benchmarks.floor_server --port 0      # prints {"ev": "listening", "port": N}

A batch is a list of updates ``{"group", "type_url", "set": {name: (version, bytes)},
"remove": [names]}``; after applying one the server prints ``{"ev": "applied", "seq": n,
"streams": [open streams per serving process]}``. At the end of its input it prints
``{"ev": "served", "accepted": [streams accepted per serving process]}`` and exits.

``--workers N`` serves from N processes on one port (SO_REUSEPORT: the kernel spreads the
connections over them): this process and N - 1 children, each fed every batch as it arrives,
the serialized resources shared in the sense that no process translates anything. The
coordinator's interface is the same; ``applied`` comes once every process applied the batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import struct
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from benchmarks import wire

DEFAULT_GROUP = "*"


@dataclass(frozen=True)
class Entry:
    version: str
    sotw_frame: bytes  # DiscoveryResponse.resources (field 2): an Any
    delta_frame: bytes  # DeltaDiscoveryResponse.resources (field 2): a Resource


def make_entry(type_url: str, name: str, version: str, value: bytes) -> Entry:
    any_ = wire.string_field(1, type_url) + wire.length_delimited(2, value)
    resource = wire.string_field(1, version) + wire.length_delimited(2, any_) + wire.string_field(3, name)
    return Entry(version, wire.length_delimited(2, any_), wire.length_delimited(2, resource))


@dataclass
class Subscription:
    names: frozenset[str] | None = None  # None: wildcard
    nonce: str = ""
    sent: dict[str, str] = field(default_factory=dict)  # delta: name -> version sent
    key: bytes = b""  # SotW: the last request's subscription bytes


class Resources:
    def __init__(self) -> None:
        self.groups: dict[str, dict[str, dict[str, Entry]]] = {}
        self.versions: dict[tuple[str, str], int] = {}

    def of(self, group: str, type_url: str) -> dict[str, Entry]:
        # An unknown group (e.g. a readiness probe's proxy) gets the first group's resources.
        by_type = self.groups.get(group) or next(iter(self.groups.values()), {})
        return by_type.get(type_url, {})

    def apply(self, update: dict[str, Any]) -> tuple[str, str, frozenset[str]]:
        """Apply one update; returns (group, type URL, the names it touched)."""
        group, type_url = update["group"], update["type_url"]
        entries = self.groups.setdefault(group, {}).setdefault(type_url, {})
        for name in update.get("remove", ()):
            entries.pop(name, None)
        for name, (version, value) in update.get("set", {}).items():
            entries[name] = make_entry(type_url, name, version, value)
        self.versions[group, type_url] = self.versions.get((group, type_url), 0) + 1
        return group, type_url, frozenset(update.get("remove", ())) | frozenset(update.get("set", {}))


class Stream:
    def __init__(self, server: FloorServer, delta: bool) -> None:
        self.server = server
        self.delta = delta
        self.group = DEFAULT_GROUP
        self.subs: dict[str, Subscription] = {}
        self.out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.nonce = 0

    def _nonce(self) -> str:
        self.nonce += 1
        return str(self.nonce)

    def on_request(self, request: Any, raw: bytes) -> None:
        if request.HasField("node"):
            self.group = request.node.cluster or DEFAULT_GROUP
            if self.group not in self.server.resources.groups:
                self.group = DEFAULT_GROUP
        if self.delta:
            self._on_delta(request)
        else:
            self._on_sotw(request, raw)

    def _on_sotw(self, request: Any, raw: bytes) -> None:
        type_url = request.type_url
        sub = self.subs.get(type_url)
        if sub is not None and request.response_nonce != sub.nonce:
            return  # stale
        if request.HasField("error_detail"):
            return  # NACK: keep quiet until something changes
        # Fast path for ACKs: the request without its version and nonce fields is the
        # subscription (names + type); equal bytes, unchanged subscription.
        key = _strip(raw, wire.string_field(1, request.version_info) if request.version_info else b"",
                     wire.string_field(5, request.response_nonce) if request.response_nonce else b"")
        if sub is not None and key == sub.key:
            return
        wildcard = not request.resource_names and type_url in (wire.CLUSTER, wire.LISTENER)
        names = None if wildcard else frozenset(request.resource_names)
        if sub is not None:
            sub.key = key
        if sub is None or sub.names != names:
            sub = self.subs[type_url] = Subscription(names, sub.nonce if sub else "", key=key)
            self.push(type_url)

    def _on_delta(self, request: Any) -> None:
        type_url = request.type_url
        sub = self.subs.get(type_url)
        if sub is None:
            explicit = set(request.resource_names_subscribe) - {"*"}
            wildcard = type_url in (wire.CLUSTER, wire.LISTENER) and (
                not request.resource_names_subscribe or "*" in request.resource_names_subscribe
            )
            sub = self.subs[type_url] = Subscription(None if wildcard else frozenset(explicit))
            sub.sent.update(request.initial_resource_versions)
            self.push(type_url, force=set(explicit))
            return
        added = set(request.resource_names_subscribe)
        removed = set(request.resource_names_unsubscribe)
        if (added or removed) and sub.names is not None:
            sub.names = (sub.names | added) - removed
            for name in removed:
                sub.sent.pop(name, None)
        if added:
            self.push(type_url, force=added)

    def push(self, type_url: str, force: set[str] | None = None,
             changed: frozenset[str] | None = None) -> None:
        """Send ``type_url``. SotW EDS/RDS updates carry only the ``changed`` names (Envoy keeps
        the others); CDS/LDS always the complete set."""
        sub = self.subs.get(type_url)
        if sub is None:
            return
        entries = self.server.resources.of(self.group, type_url)
        if self.delta:
            self._push_delta(type_url, sub, entries, force or set(), changed)
            return
        if changed is not None and sub.names is not None:
            scope = sub.names & changed
            if not scope:
                return
        else:
            scope = sub.names
        version = self.server.resources.versions.get((self.group, type_url), 0)
        # The nonce is the version, so all streams of a group share one response object.
        sub.nonce = str(version)
        key = (self.group, type_url, version, scope)
        cache = self.server.responses
        response = cache.get(key)
        if response is None:
            names = entries.keys() if scope is None else sorted(n for n in scope if n in entries)
            response = cache[key] = (
                wire.string_field(1, sub.nonce)
                + b"".join(entries[n].sotw_frame for n in names)
                + wire.string_field(4, type_url)
                + wire.string_field(5, sub.nonce)
            )
        self.out.put_nowait(response)

    def _push_delta(self, type_url: str, sub: Subscription, entries: dict[str, Entry],
                    force: set[str], changed: frozenset[str] | None) -> None:
        scope = entries.keys() if sub.names is None else sub.names
        if changed is not None:  # an update: only what it touched can differ
            scope = [n for n in changed if sub.names is None or n in sub.names]
        frames, removed = [], []
        for name in scope:
            entry = entries.get(name)
            if entry is None:
                if name in sub.sent or name in force:
                    sub.sent.pop(name, None)
                    removed.append(name)
            elif sub.sent.get(name) != entry.version:
                sub.sent[name] = entry.version
                frames.append(entry.delta_frame)
        if sub.names is None and changed is None:
            for name in [n for n in sub.sent if n not in entries]:
                del sub.sent[name]
                removed.append(name)
        if not frames and not removed and not force:
            return
        self.out.put_nowait(
            b"".join(frames)
            + wire.string_field(4, type_url)
            + wire.string_field(5, self._nonce())
            + b"".join(wire.string_field(6, n) for n in removed)
        )


class FloorServer:
    def __init__(self) -> None:
        self.resources = Resources()
        self.streams: set[Stream] = set()
        self.accepted = 0  # streams ever opened
        # Joined SotW responses by (group, type, version, names): built once, shared.
        self.responses: dict[tuple[Any, ...], bytes] = {}

    def apply(self, batch: list[dict[str, Any]]) -> None:
        self.responses.clear()  # every cached response predates this batch
        changed: dict[tuple[str, str], frozenset[str]] = {}
        for update in batch:
            group, type_url, names = self.resources.apply(update)
            changed[group, type_url] = changed.get((group, type_url), frozenset()) | names
        order = {t: i for i, t in enumerate(wire.TYPES)}  # CDS, EDS, LDS, RDS
        for (group, type_url), names in sorted(changed.items(), key=lambda c: order.get(c[0][1], 9)):
            for stream in self.streams:
                if stream.group == group or group == DEFAULT_GROUP:
                    stream.push(type_url, changed=names)

    def handler(self, delta: bool):
        async def serve(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext):
            stream = Stream(self, delta)
            self.streams.add(stream)
            self.accepted += 1

            async def read() -> None:
                try:
                    async for request, raw in requests:
                        stream.on_request(request, raw)
                finally:
                    stream.out.put_nowait(None)

            reader = asyncio.create_task(read())
            try:
                while (message := await stream.out.get()) is not None:
                    yield message
            finally:
                self.streams.discard(stream)
                reader.cancel()

        return serve

    def generic_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "envoy.service.discovery.v3.AggregatedDiscoveryService",
            {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.handler(False),
                    request_deserializer=lambda raw: (discovery_pb2.DiscoveryRequest.FromString(raw), raw),
                    response_serializer=None,
                ),
                "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.handler(True),
                    request_deserializer=lambda raw: (discovery_pb2.DeltaDiscoveryRequest.FromString(raw), raw),
                    response_serializer=None,
                ),
            },
        )


def _strip(raw: bytes, prefix: bytes, suffix: bytes) -> bytes:
    start = len(prefix) if prefix and raw.startswith(prefix) else 0
    end = len(raw) - len(suffix) if suffix and raw.endswith(suffix) else len(raw)
    return raw[start:end]


def encode_batch(batch: list[dict[str, Any]]) -> bytes:
    data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack(">Q", len(data)) + data


class Workers:
    """The N - 1 child processes serving beside this one on the same port, fed every batch."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes
        self.applied = [0] * len(processes)
        self.streams: list[list[int]] = [[0] for _ in processes]
        self.accepted: list[list[int]] = [[] for _ in processes]
        self._changed = asyncio.Condition()
        self._readers = [asyncio.create_task(self._read(i)) for i in range(len(processes))]

    @classmethod
    async def start(cls, host: str, port: int, count: int) -> Workers:
        processes = []
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.floor_server", "--host", host, "--port",
                str(port), stdin=PIPE, stdout=PIPE)
            processes.append(process)
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            bound = json.loads(line)["port"] if line else 0
            if bound != port:  # a failed bind answers 0
                raise RuntimeError(f"a floor worker could not bind {host}:{port} (got {bound})")
        return cls(processes)

    async def _read(self, index: int) -> None:
        stdout = self.processes[index].stdout
        assert stdout is not None
        while line := await stdout.readline():
            event = json.loads(line)
            async with self._changed:
                if event["ev"] == "applied":
                    self.applied[index], self.streams[index] = event["seq"], event["streams"]
                elif event["ev"] == "served":
                    self.accepted[index] = event["accepted"]
                self._changed.notify_all()

    async def forward(self, data: bytes) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(data)
        for process in self.processes:
            assert process.stdin is not None
            await process.stdin.drain()

    async def until_applied(self, seq: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: min(self.applied, default=seq) >= seq)

    async def stop(self) -> None:
        """End their input; they print what they served and exit."""
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.gather(*self._readers)


async def main(host: str, port: int, workers: int = 1) -> None:
    floor = FloorServer()
    # SO_REUSEPORT is gRPC's default on Linux; said explicitly, as the workers depend on it.
    server = grpc.aio.server(options=[("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers((floor.generic_handler(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    children = await Workers.start(host, bound, workers - 1)
    print(json.dumps({"ev": "listening", "port": bound}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**31)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    seq = 0
    try:
        while True:
            try:
                header = await reader.readexactly(8)
            except asyncio.IncompleteReadError:
                break
            (size,) = struct.unpack(">Q", header)
            data = await reader.readexactly(size)
            await children.forward(header + data)  # they apply it while this process does
            floor.apply(pickle.loads(data))
            seq += 1
            await children.until_applied(seq)
            streams = [len(floor.streams), *(n for s in children.streams for n in s)]
            print(json.dumps({"ev": "applied", "seq": seq, "streams": streams}), flush=True)
    finally:
        await children.stop()
    await server.stop(0.5)
    accepted = [floor.accepted, *(n for a in children.accepted for n in a)]
    print(json.dumps({"ev": "served", "accepted": accepted}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1,
                        help="serving processes on the one port (SO_REUSEPORT)")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    asyncio.run(main(args.host, args.port, args.workers))
