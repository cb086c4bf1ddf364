"""The gRPC face: status codes for the auth hook, single-type services, TLS, shutdown, and a
stuck client over real HTTP/2 flow control."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from controlplane.xds import PermissionDenied, Unauthenticated, types
from tests.harness import xds_resources as r
from tests.harness.xds_client import XdsClientStream
from tests.harness.xds_double import ack, sotw_request
from tests.harness.xds_server import running_xds_server
from tests.xds.support import base_snapshot, self_signed


def channel(port: int) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (PermissionDenied("claims namespace b"), grpc.StatusCode.PERMISSION_DENIED),
        (Unauthenticated("no token"), grpc.StatusCode.UNAUTHENTICATED),
    ],
)
async def test_authentication_verdicts_map_to_grpc_status(error, code):
    seen = []

    async def authenticate(call, node):
        seen.append((call.metadata_value("authorization"), node.id))
        raise error

    async with running_xds_server(authenticate=authenticate) as xds, channel(xds.port) as ch:
        stream = XdsClientStream(ch, metadata=(("authorization", "Bearer t0k"),))
        await stream.send(sotw_request(types.CLUSTER, node_id="n1"))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stream.recv()
        assert raised.value.code() == code
        assert seen == [("Bearer t0k", "n1")]


async def test_single_type_cluster_service():
    async with running_xds_server(group_of=lambda n, i: "g") as xds, channel(xds.port) as ch:
        xds.cache.set_snapshot("g", base_snapshot())
        stream = XdsClientStream(
            ch, method="/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters"
        )
        await stream.send(sotw_request(types.CLUSTER, node_id="n1"))
        response = await stream.recv()
        assert sorted(r.decode_resources(response)) == ["a", "b"]
        assert xds.streams_status()[0]["service"] == "CDS"
        await stream.close()


async def test_tls_listener():
    cert, key = self_signed("istiod.istio-system.svc")
    credentials = grpc.ssl_server_credentials([(key, cert)])
    async with running_xds_server(credentials=credentials, group_of=lambda n, i: "g") as xds:
        xds.cache.set_snapshot("g", base_snapshot())
        client_credentials = grpc.ssl_channel_credentials(root_certificates=cert)
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{xds.port}",
            client_credentials,
            options=[("grpc.ssl_target_name_override", "istiod.istio-system.svc")],
        ) as ch:
            stream = XdsClientStream(ch)
            await stream.send(sotw_request(types.CLUSTER, node_id="tls"))
            response = await stream.recv()
            assert sorted(r.decode_resources(response)) == ["a", "b"]
            peer = xds.streams_status()[0]["peer"]
            assert peer.startswith("ipv4:127.0.0.1")
            await stream.close()


async def test_stop_ends_open_streams():
    async with running_xds_server(group_of=lambda n, i: "g") as xds, channel(xds.port) as ch:
        xds.cache.set_snapshot("g", base_snapshot())
        stream = XdsClientStream(ch)
        await stream.send(sotw_request(types.CLUSTER, node_id="n"))
        await stream.recv()
        await xds.stop(grace=5)
        with pytest.raises((EOFError, grpc.aio.AioRpcError)):
            await asyncio.wait_for(stream.recv(), 30)
        assert xds.streams_status() == []
        assert xds.counters.streams_active == 0


def big_snapshot(generation: int, count: int = 1000):
    return r.snapshot(
        clusters=[r.cluster(f"c{i}", timeout_ms=1000 + generation) for i in range(count)],
        endpoints=[r.assignment(f"c{i}", [("127.0.0.1", 1000 + i)]) for i in range(count)],
    )


async def test_stuck_client_does_not_delay_others():
    async with running_xds_server(group_of=lambda n, i: "g") as xds:
        xds.cache.set_snapshot("g", big_snapshot(0))
        async with channel(xds.port) as stuck_ch, channel(xds.port) as fast_ch:
            stuck = XdsClientStream(stuck_ch, raw=True)
            await stuck.send(sotw_request(types.CLUSTER, node_id="stuck"))
            # The stuck client never reads: its responses pile up against flow control.
            fast = XdsClientStream(fast_ch)
            await fast.send(sotw_request(types.CLUSTER, node_id="fast"))
            response = await fast.recv()
            await fast.send(ack(response))
            for generation in range(1, 16):  # ~150 KB each: far beyond the HTTP/2 windows
                xds.cache.set_snapshot("g", big_snapshot(generation))
                response = await asyncio.wait_for(fast.recv(), 60)
                await fast.send(ack(response))
                assert response.version_info == xds.cache.group_versions("g")[types.CLUSTER]
            stuck_status = next(s for s in xds.streams_status() if s["node_id"] == "stuck")
            # The stuck one is behind: it has not ACKed anything beyond the first response.
            assert stuck_status["types"]["CDS"]["version_acked"] is None
            await stuck.close()
            await fast.close()
