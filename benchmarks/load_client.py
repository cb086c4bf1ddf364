"""The load client: many simulated sidecars in one process, each an ADS stream that behaves as
Envoy's does, reporting to the coordinator as JSON lines on stdout.

    python -m benchmarks.load_client '{"target": "127.0.0.1:15010", "first": 0, "count": 250,
                                       "groups": 4, "namespaces": 10, "mode": "sotw"}'

Commands arrive as JSON lines on stdin: ``connect``, ``probe`` (register a probe before the
change it detects), ``report`` (per-proxy totals), ``stop``. Events go out as JSON lines:
``ready``, ``synced`` (initial configuration complete and ACKed), ``hits`` (probes satisfied),
``probe_ok`` (probe registered), ``report``.

Each proxy opens its own connection (local subchannel pool), subscribes to CDS and LDS as
wildcards, to EDS for the EDS clusters it got and RDS for the route names in its listeners, and
ACKs every response with its nonce. It decodes only names, EDS service names and RDS names (the
decodes are cached by content, which all proxies of a process share); the rest stays bytes.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2

from benchmarks import proxies, wire
from benchmarks.probes import Probe

_EDS = 3  # Cluster.DiscoveryType.EDS
_CACHE_LIMIT = 200_000
_RETRY_SECONDS = 0.5  # Envoy's gRPC mux retry: jittered exponential backoff from 500 ms ...
_RETRY_MAX_SECONDS = 30.0  # ... to 30 s
_RESPONSE_CACHE = 16


class Decoder:
    """Content-keyed caches: each distinct resource version is decoded once per process."""

    def __init__(self) -> None:
        self._clusters: dict[bytes, tuple[str, str | None]] = {}
        self._listeners: dict[bytes, tuple[str, tuple[str, ...]]] = {}

    def cluster(self, value: bytes) -> tuple[str, str | None]:
        found = self._clusters.get(value)
        if found is None:
            c = cluster_pb2.Cluster.FromString(value)
            eds = (c.eds_cluster_config.service_name or c.name) if c.type == _EDS else None
            found = (c.name, eds)
            self._remember(self._clusters, value, found)
        return found

    def listener(self, value: bytes) -> tuple[str, tuple[str, ...]]:
        found = self._listeners.get(value)
        if found is None:
            listener = listener_pb2.Listener.FromString(value)
            chains = list(listener.filter_chains)
            if listener.HasField("default_filter_chain"):
                chains.append(listener.default_filter_chain)
            routes = []
            for chain in chains:
                for f in chain.filters:
                    if f.typed_config.type_url.endswith(".HttpConnectionManager"):
                        hcm = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
                        if hcm.HasField("rds"):
                            routes.append(hcm.rds.route_config_name)
            found = (listener.name, tuple(sorted(set(routes))))
            self._remember(self._listeners, value, found)
        return found

    @staticmethod
    def _remember(cache: dict, key: bytes, value: Any) -> None:
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        cache[key] = value


def _backoff(retries: int) -> float:
    """Seconds before the next attempt, as Envoy's JitteredExponentialBackOffStrategy: the
    first retry of a stream that had synced soon, then up to twice as long each time."""
    if retries <= 1:
        return random.uniform(0, _RETRY_SECONDS)
    return random.uniform(0, min(_RETRY_MAX_SECONDS, _RETRY_SECONDS * (2**retries - 1)))


@dataclass(frozen=True)
class Parsed:
    """What a proxy takes from one response; shared by every proxy that got the same bytes."""
    contents: dict[str, bytes]  # name -> serialized resource
    names: dict[str, Any]  # SotW CDS: name -> EDS name; LDS: name -> route names
    removed: tuple[str, ...]  # delta


class Hub:
    """What all proxies of the process share: the decoder, the probes, the outgoing events."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self.decoder = Decoder()
        # Responses differ between streams by their nonce only (the server serializes a
        # version once); keyed by the bytes without the trailing nonce, the same push is
        # walked once per process instead of once per proxy.
        self._responses: OrderedDict[bytes, Parsed] = OrderedDict()
        self._names: dict[tuple[str, ...], bytes] = {}
        self.probes: dict[str, list[Probe]] = {t: [] for t in wire.TYPES}
        self.emit = emit
        self.synced: list[list[Any]] = []
        self.hits: list[list[Any]] = []

    def names_wire(self, names: tuple[str, ...]) -> bytes:
        """DiscoveryRequest.resource_names (field 3) encoded, shared by equal subscriptions."""
        if not names:
            return b""
        found = self._names.get(names)
        if found is None:
            if len(self._names) > 64:
                self._names.clear()
            found = self._names[names] = b"".join(wire.string_field(3, n) for n in names)
        return found

    def parsed(self, raw: bytes, nonce: str, parse: Callable[[], Parsed]) -> Parsed:
        suffix = wire.string_field(5, nonce)
        if not nonce or not raw.endswith(suffix):
            return parse()  # nonce not last on the wire: no safe key
        key = raw[: len(raw) - len(suffix)]
        found = self._responses.get(key)
        if found is None:
            found = self._responses[key] = parse()
            while len(self._responses) > _RESPONSE_CACHE:
                self._responses.popitem(last=False)
        return found

    def flush(self) -> None:
        if self.synced:
            self.emit({"ev": "synced", "proxies": self.synced})
            self.synced = []
        if self.hits:
            self.emit({"ev": "hits", "hits": self.hits})
            self.hits = []


class Sidecar:
    """One simulated proxy: one connection, one ADS stream (SotW or delta)."""

    def __init__(self, hub: Hub, identity: proxies.ProxyIdentity, target: str, delta: bool) -> None:
        self.hub = hub
        self.identity = identity
        self.target = target
        self.delta = delta
        self.node = proxies.node(identity)
        self.node_wire = wire.length_delimited(2, self.node.SerializeToString())
        self.names_cache: dict[str, tuple[tuple[str, ...], bytes]] = {}
        self.hit: set[str] = set()
        self.bytes_received = 0
        self.responses = {wire.SHORT[t]: 0 for t in wire.TYPES}
        self.reconnects = 0
        self.errors: dict[str, int] = {}  # status code of each ended attempt -> count
        self.synced_at: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.node_sent = False
        self.nonce: dict[str, str] = {}
        self.version: dict[str, str] = {}
        self.eds_names: tuple[str, ...] = ()
        self.route_names: tuple[str, ...] = ()
        self.clusters: dict[str, str | None] = {}  # delta: name -> EDS name
        self.listeners: dict[str, tuple[str, ...]] = {}  # delta: name -> route names
        self.got: dict[str, set[str]] = {t: set() for t in wire.TYPES}
        self.lds_requested = False

    async def run(self) -> None:
        options = [
            ("grpc.use_local_subchannel_pool", 1),  # one connection per proxy, as Envoys have
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
        ]
        retries = 0
        while True:
            async with grpc.aio.insecure_channel(self.target, options=options) as channel:
                method = wire.ADS_DELTA if self.delta else wire.ADS_SOTW
                call = channel.stream_stream(
                    method, request_serializer=None, response_deserializer=None,
                )()
                try:
                    await self._converse(call)
                    return
                except (grpc.aio.AioRpcError, grpc.aio.UsageError) as error:
                    code = error.code().name if isinstance(error, grpc.aio.AioRpcError) else "EOF"
                    if not any(self.got.values()):
                        code += " (before any response)"
                    self.errors[code] = self.errors.get(code, 0) + 1
                    self.reconnects += 1
                    self._reset()
                    retries = 0 if self.synced_at is not None else retries + 1
                    self.synced_at = None  # synced again (and reported) after the reconnect
            await asyncio.sleep(_backoff(retries))

    # --- requests -------------------------------------------------------------------------

    async def _send(self, call: Any, type_url: str, names: tuple[str, ...] = (),
                    unsubscribe: tuple[str, ...] = ()) -> None:
        if self.delta:
            request = discovery_pb2.DeltaDiscoveryRequest(
                type_url=type_url, resource_names_subscribe=list(names),
                resource_names_unsubscribe=list(unsubscribe),
                response_nonce=self.nonce.get(type_url, ""),
            )
            if not self.node_sent:
                request.node.CopyFrom(self.node)
                self.node_sent = True
            await call.write(request.SerializeToString())
            return
        # A SotW request repeats the whole subscription (1,400 EDS names in a large mesh) on
        # every ACK, as Envoy's do: written from pre-encoded fields, in field order.
        version = self.version.get(type_url, "")
        nonce = self.nonce.get(type_url, "")
        parts = [wire.string_field(1, version) if version else b""]
        if not self.node_sent:
            parts.append(self.node_wire)
            self.node_sent = True
        cached = self.names_cache.get(type_url)
        if cached is None or cached[0] is not names:  # hashing 1,400 names per ACK adds up
            cached = self.names_cache[type_url] = (names, self.hub.names_wire(names))
        parts += [cached[1], wire.string_field(4, type_url),
                  wire.string_field(5, nonce) if nonce else b""]
        await call.write(b"".join(parts))

    async def _ack(self, call: Any, type_url: str) -> None:
        if self.delta:
            await self._send(call, type_url)  # nonce only: no subscription change
        elif type_url == wire.ENDPOINT:
            await self._send(call, type_url, self.eds_names)
        elif type_url == wire.ROUTE:
            await self._send(call, type_url, self.route_names)
        else:
            await self._send(call, type_url)

    # --- the conversation -----------------------------------------------------------------

    async def _converse(self, call: Any) -> None:
        await self._send(call, wire.CLUSTER)
        while True:
            raw = await call.read()
            if raw is grpc.aio.EOF:
                raise grpc.aio.UsageError("stream ended")
            arrived = time.monotonic()
            self.bytes_received += len(raw)
            if self.delta:
                type_url, contents = self._take_delta(raw)
            else:
                type_url, contents = self._take_sotw(raw)
            self.responses[wire.SHORT.get(type_url, "other")] = (
                self.responses.get(wire.SHORT.get(type_url, "other"), 0) + 1
            )
            await self._follow_up(call, type_url)
            acked = time.monotonic()
            self._check(type_url, contents, arrived, acked)

    def _take_sotw(self, raw: bytes) -> tuple[str, dict[str, bytes]]:
        response = discovery_pb2.DiscoveryResponse.FromString(raw)
        type_url = response.type_url
        self.nonce[type_url] = response.nonce
        self.version[type_url] = response.version_info
        parsed = self.hub.parsed(raw, response.nonce, lambda: self._parse_sotw(response))
        if type_url == wire.CLUSTER:
            self.clusters = parsed.names  # shared, never mutated in SotW
        elif type_url == wire.LISTENER:
            self.listeners = parsed.names
        return type_url, parsed.contents

    def _parse_sotw(self, response: Any) -> Parsed:
        decoder = self.hub.decoder
        contents: dict[str, bytes] = {}
        names: dict[str, Any] = {}
        if response.type_url == wire.CLUSTER:
            for any_ in response.resources:
                name, names[name] = decoder.cluster(any_.value)
                contents[name] = any_.value
        elif response.type_url == wire.LISTENER:
            for any_ in response.resources:
                name, names[name] = decoder.listener(any_.value)
                contents[name] = any_.value
        else:
            for any_ in response.resources:
                value = any_.value
                contents[wire.first_string(value) or ""] = value
        return Parsed(contents, names, ())

    def _take_delta(self, raw: bytes) -> tuple[str, dict[str, bytes]]:
        response = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
        type_url = response.type_url
        self.nonce[type_url] = response.nonce
        parsed = self.hub.parsed(raw, response.nonce, lambda: Parsed(
            {r.name: r.resource.value for r in response.resources}, {},
            tuple(response.removed_resources)))
        contents = parsed.contents
        decoder = self.hub.decoder
        if type_url == wire.CLUSTER:
            for name, value in contents.items():
                self.clusters[name] = decoder.cluster(value)[1]
            for name in parsed.removed:
                self.clusters.pop(name, None)
        elif type_url == wire.LISTENER:
            for name, value in contents.items():
                self.listeners[name] = decoder.listener(value)[1]
            for name in parsed.removed:
                self.listeners.pop(name, None)
        else:
            self.got[type_url].difference_update(parsed.removed)
        return type_url, contents

    async def _follow_up(self, call: Any, type_url: str) -> None:
        """Envoy's order: new EDS/RDS subscriptions before the ACK of what required them; LDS
        only once clusters are warm (EDS answered)."""
        if type_url == wire.CLUSTER:
            wanted = tuple(sorted({e for e in self.clusters.values() if e}))
            if wanted != self.eds_names:
                await self._resubscribe(call, wire.ENDPOINT, self.eds_names, wanted)
                self.eds_names = wanted
            await self._ack(call, type_url)
            if not wanted and not self.lds_requested:
                await self._request_listeners(call)
        elif type_url == wire.LISTENER:
            wanted = tuple(sorted({r for routes in self.listeners.values() for r in routes}))
            if wanted != self.route_names:
                await self._resubscribe(call, wire.ROUTE, self.route_names, wanted)
                self.route_names = wanted
            await self._ack(call, type_url)
        else:
            await self._ack(call, type_url)
            if type_url == wire.ENDPOINT and not self.lds_requested:
                await self._request_listeners(call)

    async def _request_listeners(self, call: Any) -> None:
        self.lds_requested = True
        await self._send(call, wire.LISTENER)

    async def _resubscribe(self, call: Any, type_url: str, old: tuple[str, ...],
                           new: tuple[str, ...]) -> None:
        if self.delta:
            added = tuple(sorted(set(new) - set(old)))
            removed = tuple(sorted(set(old) - set(new)))
            saved = self.nonce.pop(type_url, None)  # a subscription change carries no ACK
            await self._send(call, type_url, added, removed)
            if saved is not None:
                self.nonce[type_url] = saved
        else:
            await self._send(call, type_url, new)

    # --- what the coordinator wants to know -----------------------------------------------

    def _check(self, type_url: str, contents: dict[str, bytes], arrived: float, acked: float) -> None:
        if self.synced_at is None:
            got = self.got[type_url]
            got.update(contents)
            if self._complete():
                self.synced_at = acked
                self.hub.synced.append([self.identity.index, arrived, acked, self.counts()])
        for probe in self.hub.probes[type_url]:
            if probe.id in self.hit:
                continue
            content = contents.get(probe.name)
            if content is not None and probe.matches(content):
                self.hit.add(probe.id)
                self.hub.hits.append([probe.id, self.identity.index, arrived, acked])

    def _complete(self) -> bool:
        got = self.got
        return (
            bool(got[wire.CLUSTER]) and bool(got[wire.LISTENER])
            and got[wire.ENDPOINT].issuperset(self.eds_names)
            and got[wire.ROUTE].issuperset(self.route_names)
        )

    def counts(self) -> dict[str, int]:
        return {"CDS": len(self.clusters), "EDS": len(self.eds_names),
                "LDS": len(self.listeners), "RDS": len(self.route_names)}

    def report(self) -> dict[str, Any]:
        return {"proxy": self.identity.index, "bytes": self.bytes_received,
                "responses": self.responses, "reconnects": self.reconnects, "errors": self.errors,
                "synced": self.synced_at is not None, "counts": self.counts(),
                "versions": {wire.SHORT.get(t, t): v for t, v in sorted(self.version.items())},
                "probes_hit": len(self.hit)}


async def main(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    out = sys.stdout

    def emit(event: dict[str, Any]) -> None:
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
        out.flush()

    hub = Hub(emit)
    sidecars = [
        Sidecar(hub, proxies.identity(i, config["groups"], config["namespaces"]),
                config["target"], config.get("mode") == "delta")
        for i in range(config["first"], config["first"] + config["count"])
    ]
    tasks: list[asyncio.Task] = []
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def flusher() -> None:
        while True:
            await asyncio.sleep(0.02)
            hub.flush()

    flush_task = asyncio.create_task(flusher())
    emit({"ev": "ready", "first": config["first"], "count": config["count"]})
    while True:
        line = await reader.readline()
        if not line:
            break
        command = json.loads(line)
        kind = command["cmd"]
        if kind == "connect":
            tasks = [asyncio.create_task(s.run()) for s in sidecars]
        elif kind == "probe":
            for data in command["probes"]:
                probe = Probe.from_json(data)
                hub.probes[probe.type_url].append(probe)
            emit({"ev": "probe_ok", "id": command["id"]})
        elif kind == "forget":
            ids = set(command["ids"])
            for t in hub.probes:
                hub.probes[t] = [p for p in hub.probes[t] if p.id not in ids]
            for s in sidecars:
                s.hit -= ids
        elif kind == "report":
            hub.flush()
            emit({"ev": "report", "proxies": [s.report() for s in sidecars]})
        elif kind == "stop":
            break
    hub.flush()
    flush_task.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
