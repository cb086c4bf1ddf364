"""Wait until a server serves the whole mesh, with a proxy of its own (not one of the measured
groups, so no group's configuration is computed ahead of the cold start)."""

from __future__ import annotations

import asyncio
import time

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from benchmarks import proxies, wire


async def wait_serving(address: str, cluster_name: str, timeout: float = 120) -> float:
    """Seconds until a CDS response lists ``cluster_name`` (the last service's cluster)."""
    start = time.monotonic()
    ident = proxies.ProxyIdentity(index=999_999, group=999_999, namespace="warmup", ip="10.255.255.254")
    last_error: Exception | None = None
    while time.monotonic() - start < timeout:
        try:
            async with grpc.aio.insecure_channel(
                address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)]
            ) as channel:
                call = channel.stream_stream(
                    wire.ADS_SOTW,
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
                )()
                await call.write(discovery_pb2.DiscoveryRequest(
                    type_url=wire.CLUSTER, node=proxies.node(ident)))
                while True:
                    response = await asyncio.wait_for(call.read(), timeout)
                    if response is grpc.aio.EOF:
                        break
                    names = {wire.first_string(a.value) for a in response.resources}
                    if cluster_name in names:
                        call.cancel()
                        return time.monotonic() - start
                    await call.write(discovery_pb2.DiscoveryRequest(
                        type_url=wire.CLUSTER, response_nonce=response.nonce,
                        version_info=response.version_info))
        except (grpc.aio.AioRpcError, TimeoutError) as error:
            last_error = error
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{address} never served {cluster_name}: {last_error}")
