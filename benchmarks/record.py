"""A recording client: what a server sends one proxy (every type, by name, as bytes).

Used to check that the floor serves exactly our control plane's resources, byte for byte.
"""

from __future__ import annotations

import asyncio

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from benchmarks import proxies, wire
from benchmarks.load_client import Decoder

Resources = dict[str, dict[str, bytes]]


async def record(address: str, ident: proxies.ProxyIdentity, timeout: float = 30) -> Resources:
    """CDS and LDS as wildcards, then EDS and RDS for what they name; each response ACKed."""
    decoder = Decoder()
    got: Resources = {}
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    ) as channel:
        call = channel.stream_stream(
            wire.ADS_SOTW, request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )()
        node_sent = False

        async def fetch(type_url: str, names: list[str]) -> dict[str, bytes]:
            nonlocal node_sent
            request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names)
            if not node_sent:
                request.node.CopyFrom(proxies.node(ident))
                node_sent = True
            await call.write(request)
            while True:
                response = await asyncio.wait_for(call.read(), timeout)
                if response is grpc.aio.EOF:
                    raise ConnectionError("stream ended")
                await call.write(discovery_pb2.DiscoveryRequest(
                    type_url=response.type_url, resource_names=names,
                    response_nonce=response.nonce, version_info=response.version_info))
                if response.type_url == type_url:
                    return {wire.first_string(a.value) or "": a.value for a in response.resources}

        got[wire.CLUSTER] = await fetch(wire.CLUSTER, [])
        eds = sorted({e for v in got[wire.CLUSTER].values() if (e := decoder.cluster(v)[1])})
        got[wire.ENDPOINT] = await fetch(wire.ENDPOINT, eds) if eds else {}
        got[wire.LISTENER] = await fetch(wire.LISTENER, [])
        routes = sorted({r for v in got[wire.LISTENER].values() for r in decoder.listener(v)[1]})
        got[wire.ROUTE] = await fetch(wire.ROUTE, routes) if routes else {}
        call.cancel()
    return got
