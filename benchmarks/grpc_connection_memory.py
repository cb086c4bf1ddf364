"""What grpc.aio itself holds per connected client: a server that keeps nothing of its own.

Each client opens its own connection and one bidirectional stream, sends one request of
``--request-bytes`` (an Envoy's EDS ACK on the 1,000-service mesh is ~70 KB: 1,400 names),
reads a 64-byte answer and stays connected. The server's handler keeps no message. Reported:
(RSS(P2) - RSS(P1)) / (P2 - P1) of the server process, as ``stream_memory.py`` reports it for
the control plane and the floor; the difference is what they hold beyond gRPC.

    .venv/bin/python -m benchmarks.grpc_connection_memory [--request-bytes 100,70000]
        [--proxies 100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator

import grpc
import psutil

_SERVICE, _METHOD = "bench.Null", "Stream"


async def serve() -> None:
    async def handler(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        async for _ in requests:
            await context.write(b"x" * 64)

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 2**20)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, {
        _METHOD: grpc.stream_stream_rpc_method_handler(handler),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


async def connect(port: int, count: int, request_bytes: int) -> None:
    calls = []
    for _ in range(count):
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        call = channel.stream_stream(f"/{_SERVICE}/{_METHOD}")()
        await call.write(b"y" * request_bytes)
        await call.read()
        calls.append((channel, call))
    print("ready", flush=True)
    await asyncio.sleep(3600)  # connected until killed


def measure(request_bytes: int, levels: tuple[int, int]) -> float:
    server = psutil.Popen([sys.executable, "-m", "benchmarks.grpc_connection_memory", "--serve"],
                          stdout=psutil.subprocess.PIPE, text=True)
    clients: list[psutil.Popen] = []
    try:
        port = int(server.stdout.readline())
        rss = []
        for count in (levels[0], levels[1] - levels[0]):
            client = psutil.Popen(
                [sys.executable, "-m", "benchmarks.grpc_connection_memory", "--connect",
                 f"{port},{count},{request_bytes}"],
                stdout=psutil.subprocess.PIPE, text=True,
            )
            clients.append(client)
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError("client failed")
            time.sleep(2)  # settle
            rss.append(server.memory_info().rss)
        return (rss[1] - rss[0]) / 1024 / (levels[1] - levels[0])
    finally:
        for process in (*clients, server):
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--request-bytes", default="100,70000")
    parser.add_argument("--proxies", default="100,1000", help="P1,P2")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--connect", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    if args.connect:
        port, count, size = (int(x) for x in args.connect.split(","))
        asyncio.run(connect(port, count, size))
        return
    p1, p2 = (int(p) for p in args.proxies.split(","))
    print("| request bytes | KB per extra connection |")
    print("|---|---|")
    for size in (int(s) for s in args.request_bytes.split(",")):
        print(f"| {size:,} | {measure(size, (p1, p2)):,.1f} |", flush=True)


if __name__ == "__main__":
    main()
