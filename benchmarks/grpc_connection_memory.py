"""What grpc.aio itself holds per connected client: a server that keeps nothing of its own.

Each client opens its own connection and one bidirectional stream, and goes through a
conversation: ``100`` or ``70000`` is one request of that many bytes (an Envoy's EDS ACK on
the 1,000-service mesh is ~70 KB: 1,400 names); ``xds`` is the load client's SotW exchange
(CDS request; EDS subscription + CDS ACK; EDS ACK + LDS request; RDS subscription + LDS
ACK; RDS ACK: two 70 KB requests among small ones); ``xds-delta`` the same in delta (its
ACKs carry a nonce only: one 70 KB request, the EDS subscription). The server answers each
request with 64 bytes and keeps nothing; the clients stay connected. All of a level's
clients connect at once, as the load client's proxies do. Reported: (RSS(P2) - RSS(P1)) /
(P2 - P1) of the server process, as ``stream_memory.py`` reports it for the control plane
and the floor, and glibc's account of the same difference (``mallinfo2``: heap in use, free
in its arenas, mapped on its own). The handler reads requests either with gRPC's request iterator, whose
frame keeps the last request until the next one arrives, or with ``context.read()``, as
``XdsServer`` does.

    .venv/bin/python -m benchmarks.grpc_connection_memory [--conversations 100,70000,xds,xds-delta]
        [--handlers iterator,read] [--proxies 100,1000] [--mmap-threshold BYTES]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict

import grpc
import psutil

from controlplane.server.heap import HeapTrimmer

_SERVICE, _METHOD = "bench.Null", "Stream"
_ANSWER = b"x" * 64
# The load client's conversations (benchmarks/load_client.py): rounds of requests written
# back to back, each round answered before the next. SotW ACKs repeat the subscription (the
# EDS ACK names every cluster); delta ACKs carry a nonce only.
CONVERSATIONS = {
    "xds": ((500,), (70_000, 100), (70_000, 300), (2_000, 300), (2_000,)),
    "xds-delta": ((500,), (70_000, 100), (100, 300), (2_000, 300), (100,)),
}


def conversation(name: str) -> tuple[tuple[int, ...], ...]:
    return CONVERSATIONS[name] if name in CONVERSATIONS else ((int(name),),)


async def serve(handler_kind: str) -> None:
    async def by_iterator(requests: AsyncIterator[bytes], context) -> None:
        async for _ in requests:
            await context.write(_ANSWER)

    async def by_read(_: AsyncIterator[bytes], context) -> None:
        while (request := await context.read()) is not grpc.aio.EOF:
            del request
            await context.write(_ANSWER)

    handler = by_iterator if handler_kind == "iterator" else by_read
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 2**20)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, {
        _METHOD: grpc.stream_stream_rpc_method_handler(handler),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    threading.Thread(target=_answer_stats, daemon=True).start()
    await server.wait_for_termination()


def _answer_stats() -> None:
    """Each line on stdin asks for glibc's account of the heap, as one JSON line."""
    trimmer = HeapTrimmer()
    for _ in sys.stdin:
        usage = trimmer.usage()
        print(json.dumps(asdict(usage) if usage else {}), flush=True)


async def connect(port: int, count: int, name: str) -> None:
    rounds = conversation(name)
    kept = []

    async def one() -> None:
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        call = channel.stream_stream(f"/{_SERVICE}/{_METHOD}")()
        for sizes in rounds:
            for size in sizes:
                await call.write(b"y" * size)
            for _ in sizes:
                await call.read()
        kept.append((channel, call))

    await asyncio.gather(*(one() for _ in range(count)))
    print("ready", flush=True)
    await asyncio.sleep(3600)  # connected until killed


def measure(name: str, handler: str, levels: tuple[int, int],
            mmap_threshold: int) -> dict[str, float]:
    env = dict(os.environ)
    if mmap_threshold:
        env["GLIBC_TUNABLES"] = f"glibc.malloc.mmap_threshold={mmap_threshold}"
    server = psutil.Popen([sys.executable, "-m", "benchmarks.grpc_connection_memory",
                           "--serve", handler], stdin=psutil.subprocess.PIPE,
                          stdout=psutil.subprocess.PIPE, text=True, env=env)
    clients: list[psutil.Popen] = []
    try:
        port = int(server.stdout.readline())
        samples = []
        for count in (levels[0], levels[1] - levels[0]):
            client = psutil.Popen(
                [sys.executable, "-m", "benchmarks.grpc_connection_memory", "--connect",
                 f"{port},{count},{name}"],
                stdout=psutil.subprocess.PIPE, text=True,
            )
            clients.append(client)
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError("client failed")
            time.sleep(2)  # settle
            server.stdin.write("\n")
            server.stdin.flush()
            heap = json.loads(server.stdout.readline())
            samples.append({"rss": server.memory_info().rss, **heap})
        extra = levels[1] - levels[0]
        return {key: (samples[1][key] - samples[0][key]) / 1024 / extra
                for key in samples[0] if key in samples[1]}
    finally:
        for process in (*clients, server):
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", default="100,70000,xds,xds-delta")
    parser.add_argument("--handlers", default="iterator,read")
    parser.add_argument("--proxies", default="100,1000", help="P1,P2")
    parser.add_argument("--mmap-threshold", type=int, default=0,
                        help="the server's fixed glibc mmap threshold (0: glibc's own)")
    parser.add_argument("--serve", choices=("iterator", "read"), help=argparse.SUPPRESS)
    parser.add_argument("--connect", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    if args.connect:
        port, count, name = args.connect.split(",")
        asyncio.run(connect(int(port), int(count), name))
        return
    p1, p2 = (int(p) for p in args.proxies.split(","))
    print(f"P {p1} -> {p2}; mmap threshold {args.mmap_threshold or 'glibc default'}; "
          f"load {os.getloadavg()[0]:.2f}")
    print("| conversation | handler | KB per extra connection (RSS) | heap in use KB | "
          "heap free KB | mapped KB |")
    print("|---|---|---|---|---|---|")
    for name in args.conversations.split(","):
        for handler in args.handlers.split(","):
            row = measure(name, handler, (p1, p2), args.mmap_threshold)
            print(f"| {name} | {handler} | {row['rss']:,.1f} | {row.get('in_use', 0):,.1f} | "
                  f"{row.get('free', 0):,.1f} | {row.get('mapped', 0):,.1f} |", flush=True)


if __name__ == "__main__":
    main()
