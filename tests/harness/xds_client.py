"""A raw xDS client over real gRPC (tests and benchmarks): write requests, read responses."""

from __future__ import annotations

import grpc
from envoy.service.discovery.v3 import discovery_pb2

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"


class XdsClientStream:
    """One ADS stream. `raw=True` leaves responses as bytes (for throughput measurements)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        delta: bool = False,
        raw: bool = False,
        method: str | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        response_type = (
            discovery_pb2.DeltaDiscoveryResponse if delta else discovery_pb2.DiscoveryResponse
        )
        method = method or ADS + (
            "DeltaAggregatedResources" if delta else "StreamAggregatedResources"
        )
        self.call = channel.stream_stream(
            method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=None if raw else response_type.FromString,
        )(metadata=metadata or None)

    async def send(self, request) -> None:
        await self.call.write(request)

    async def recv(self):
        response = await self.call.read()
        if response is grpc.aio.EOF:
            raise EOFError("stream ended")
        return response

    async def close(self) -> None:
        self.call.cancel()
