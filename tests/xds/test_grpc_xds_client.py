"""grpcio's own xDS client (a second, independent implementation) resolves through our server."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import grpc

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.xds_server import running_xds_server

CLIENT = textwrap.dedent(
    """
    import sys, grpc
    with grpc.insecure_channel("xds:///echo-service") as channel:
        say = channel.unary_unary("/test.Echo/Say")
        print(say(b"hello", timeout=30).decode(), flush=True)
        sys.stdin.read()  # keep the xDS stream open until the test has looked at it
    """
)


def echo_handler(name: str) -> grpc.GenericRpcHandler:
    async def say(request: bytes, context) -> bytes:
        return f"{name}:{request.decode()}".encode()

    return grpc.method_handlers_generic_handler(
        "test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
    )


async def test_grpc_xds_client_reaches_a_backend_through_our_server(tmp_path):
    backend = grpc.aio.server()
    backend.add_generic_rpc_handlers((echo_handler("backend-1"),))
    backend_port = backend.add_insecure_port("127.0.0.1:0")
    await backend.start()
    try:
        async with running_xds_server(group_of=lambda node, identity: "grpc-clients") as xds:
            xds.cache.set_snapshot(
                "grpc-clients",
                {
                    types.LISTENER: [r.api_listener("echo-service", "echo-route")],
                    types.ROUTE: [r.route_config("echo-route", [("/", "echo-cluster")])],
                    types.CLUSTER: [r.cluster("echo-cluster")],
                    types.ENDPOINT: [r.assignment("echo-cluster", [("127.0.0.1", backend_port)])],
                },
            )
            bootstrap = tmp_path / "grpc-xds-bootstrap.json"
            bootstrap.write_text(
                json.dumps(
                    {
                        "xds_servers": [
                            {
                                "server_uri": f"127.0.0.1:{xds.port}",
                                "channel_creds": [{"type": "insecure"}],
                                "server_features": ["xds_v3"],
                            }
                        ],
                        "node": {"id": "grpc-client-1", "locality": {"zone": "local"}},
                    }
                )
            )
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CLIENT,
                env={"GRPC_XDS_BOOTSTRAP": str(bootstrap), "PATH": "/usr/bin:/bin"},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                line = await asyncio.wait_for(process.stdout.readline(), 60)
                assert line.decode().strip() == "backend-1:hello", (
                    await process.stderr.read(4000)
                ).decode()
                # gRPC names LDS/CDS resources explicitly: no wildcard on its stream.
                status = xds.streams_status()
                assert status and status[0]["node_id"] == "grpc-client-1"
                assert status[0]["types"]["LDS"]["subscribed"] == ["echo-service"]
                assert status[0]["types"]["LDS"]["wildcard"] is False
                assert status[0]["types"]["EDS"]["version_acked"]
                process.stdin.close()
                await asyncio.wait_for(process.wait(), 30)
                assert process.returncode == 0
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
    finally:
        await backend.stop(0)
