"""A proxy that stops reading, over real gRPC: the server neither buffers for it without bound
nor makes the others wait (DESIGN.md section 4.9).

Each stream has one response in flight at most (the next is built only once gRPC took the
last, which HTTP/2 flow control holds back while the proxy does not read), and a stream holds
its push slot (``XdsLimits.max_concurrent_pushes``) only until ``push_send_timeout``: with a
single slot, a hung proxy that kept it would stall every other proxy for good, as a hung
Envoy holds one of istiod's PILOT_PUSH_THROTTLE slots until its send returns. Figures for
2,000 proxies: ``benchmarks/reconnect_storm.py --stalled N``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds import SnapshotCache, XdsLimits, types
from tests.harness import xds_resources as r
from tests.harness.xds_client import XdsClientStream
from tests.harness.xds_server import running_xds_server

PUSHES = 20
CLUSTERS = 40
BLOB = 50_000  # bytes per cluster: each CDS response is about 2 MB


def big_snapshot(version: int) -> dict[str, list]:
    clusters = []
    for i in range(CLUSTERS):
        cluster = r.cluster(f"c{i}", timeout_ms=1000 + version)
        cluster.alt_stat_name = f"{i}-" + "x" * BLOB
        clusters.append(cluster)
    return r.snapshot(clusters=clusters)


def cds_request(node_id: str = "") -> discovery_pb2.DiscoveryRequest:
    request = discovery_pb2.DiscoveryRequest(type_url=types.CLUSTER)
    if node_id:
        request.node.id = node_id
    return request


async def test_a_proxy_that_stops_reading_holds_one_response_and_delays_nobody() -> None:
    cache = SnapshotCache()
    cache.set_snapshot("g", big_snapshot(0))
    limits = replace(XdsLimits(), max_concurrent_pushes=1, push_send_timeout=0.2)
    options = [("grpc.max_receive_message_length", -1)]
    async with running_xds_server(cache, group_of=lambda node, identity: "g", limits=limits) as server:
        target = f"127.0.0.1:{server.port}"  # type: ignore[attr-defined]
        async with grpc.aio.insecure_channel(target, options) as hung_channel, \
                grpc.aio.insecure_channel(target, options) as channel:
            hung = XdsClientStream(hung_channel, raw=True)
            await hung.send(cds_request("hung"))  # and never reads
            healthy = XdsClientStream(channel)
            try:
                await healthy.send(cds_request("healthy"))
                for version in range(1, PUSHES + 1):
                    async with asyncio.timeout(30):
                        while True:  # until the healthy proxy holds this version
                            response = await healthy.recv()
                            await healthy.send(discovery_pb2.DiscoveryRequest(
                                type_url=types.CLUSTER, version_info=response.version_info,
                                response_nonce=response.nonce,
                            ))
                            if r.decode_resources(response)["c0"].connect_timeout.nanos == \
                                    (version - 1) * 1_000_000:
                                break
                    cache.set_snapshot("g", big_snapshot(version))
                (hung_stream,) = [s for s in server.core.streams.values() if s.node.id == "hung"]
                built = hung_stream.responses_built
                # A few responses fit in flow-control windows and socket buffers; then the
                # server builds no more for it, whatever the number of pushes.
                assert built < PUSHES // 2, built
                assert hung_stream.slow
                assert server.core.counters.slow_streams == 1
            finally:
                await healthy.close()
                await hung.close()
