"""How many xDS responses (and bytes) per second one stream and 100 streams sustain.

A 1,000-cluster snapshot (+ 1,000 ClusterLoadAssignments) is served over real gRPC on loopback.
The server runs in this process; the clients (which ACK every response, as Envoy does) run in a
child process so they do not share the server's core. For each generation every cluster and
every endpoint set changes, so every stream receives a full CDS and a full EDS response.

    .venv/bin/python benchmarks/xds_throughput.py [--streams 1 100] [--generations 20]

Also measures the framing alone: joining pre-serialized resources versus building and
serializing a DiscoveryResponse message per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from controlplane.xds import SnapshotCache, XdsServer, types
from tests.harness import xds_resources as r
from tests.harness.xds_client import XdsClientStream
from tests.harness.xds_double import ack, sotw_request

CLUSTERS = 1000


def snapshot(generation: int, count: int = CLUSTERS) -> dict:
    return r.snapshot(
        clusters=[
            r.cluster(f"outbound|80||svc{i}.ns.svc.cluster.local", timeout_ms=1000 + generation)
            for i in range(count)
        ],
        endpoints=[
            r.assignment(
                f"outbound|80||svc{i}.ns.svc.cluster.local",
                [(f"10.{i // 250}.{i % 250}.{e}", 8000 + generation) for e in range(1, 4)],
            )
            for i in range(count)
        ],
    )


# --- client side (child process) -----------------------------------------------------------------


async def client_main(port: int, streams: int) -> None:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(min(streams, 8))]
    totals = {"responses": 0, "bytes": 0}

    async def one(index: int) -> None:
        stream = XdsClientStream(channels[index % len(channels)], raw=True)
        await stream.send(sotw_request(types.CLUSTER, node_id=f"bench-{index}"))
        eds_requested = False
        while True:
            try:
                raw = await stream.recv()
            except (EOFError, grpc.aio.AioRpcError):
                return
            totals["responses"] += 1
            totals["bytes"] += len(raw)
            response = discovery_pb2.DiscoveryResponse.FromString(raw)
            if response.type_url == types.CLUSTER:
                await stream.send(ack(response))
                if not eds_requested:
                    names = [f"outbound|80||svc{i}.ns.svc.cluster.local" for i in range(CLUSTERS)]
                    await stream.send(sotw_request(types.ENDPOINT, names))
                    eds_requested = True
                    eds_names = names
            else:
                await stream.send(ack(response, eds_names))

    await asyncio.gather(*(one(i) for i in range(streams)))
    print(f"client responses={totals['responses']} bytes={totals['bytes']}", flush=True)


# --- server side ---------------------------------------------------------------------------------


def all_acked(server: XdsServer, streams: int, versions: dict[str, str]) -> bool:
    live = list(server.core.streams.values())
    if len(live) < streams:
        return False
    for stream in live:
        for type_url in (types.CLUSTER, types.ENDPOINT):
            state = stream.types.get(type_url)
            if state is None or state.version_acked is None or state.pending:
                return False
            if type_url == types.CLUSTER and state.version_acked != versions[type_url]:
                return False
            if type_url == types.ENDPOINT and state.sent != {
                n: res.version
                for n, res in server.cache.resources("bench", type_url).by_name.items()
            }:
                return False
    return True


async def wait_all_acked(server: XdsServer, streams: int) -> None:
    versions = server.cache.group_versions("bench")
    while not all_acked(server, streams, versions):
        await asyncio.sleep(0.0005)


async def run_case(streams: int, generations: int, snapshots: list[dict]) -> dict[str, float]:
    cache = SnapshotCache()
    cache.set_snapshot("bench", snapshots[0])
    server = XdsServer(cache, group_of=lambda node, identity: "bench")
    port = server.add_port("127.0.0.1", 0)
    await server.start()
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        "--port",
        str(port),
        "--streams",
        str(streams),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(wait_all_acked(server, streams), 120)
        prep, fanout = [], []
        bytes_before = server.counters.bytes_sent
        pushes_before = sum(server.counters.pushes_by_type.values())
        started = time.perf_counter()
        cpu_started = time.process_time()
        for generation in range(1, generations + 1):
            t0 = time.perf_counter()
            cache.set_snapshot("bench", snapshots[generation % len(snapshots)])
            t1 = time.perf_counter()
            await asyncio.wait_for(wait_all_acked(server, streams), 120)
            t2 = time.perf_counter()
            prep.append(t1 - t0)
            fanout.append(t2 - t1)
        elapsed = time.perf_counter() - started
        server_cpu = time.process_time() - cpu_started
        sent_bytes = server.counters.bytes_sent - bytes_before
        responses = sum(server.counters.pushes_by_type.values()) - pushes_before
    finally:
        await server.stop(grace=1)
        out, _ = await asyncio.wait_for(client.communicate(), 60)
    return {
        "streams": streams,
        "generations": generations,
        "responses": responses,
        "bytes": sent_bytes,
        "elapsed_s": elapsed,
        "responses_per_s": responses / elapsed,
        "mbytes_per_s": sent_bytes / elapsed / 1e6,
        "fanout_responses_per_s": responses / sum(fanout),
        "fanout_mbytes_per_s": sent_bytes / sum(fanout) / 1e6,
        "prep_ms_median": statistics.median(prep) * 1000,
        "generation_ms_median": statistics.median(p + f for p, f in zip(prep, fanout)) * 1000,
        "client": out.decode().strip(),
        "server_cpu_share": server_cpu / elapsed,
        "server_cpu_us_per_response": server_cpu / responses * 1e6,
    }


def framing_micro(snapshot_data: dict) -> dict[str, float]:
    cache = SnapshotCache()
    cache.set_snapshot("g", snapshot_data)
    resources = list(cache.resources("g", types.CLUSTER).by_name.values())
    for res in resources:
        _ = res.sotw_field  # warm the shared bytes, as the first stream would
    rounds = 200
    t0 = time.perf_counter()
    for i in range(rounds):
        header = discovery_pb2.DiscoveryResponse(
            version_info="v", type_url=types.CLUSTER, nonce=str(i)
        ).SerializeToString()
        joined = header + b"".join(res.sotw_field for res in resources)
    t1 = time.perf_counter()
    for i in range(rounds):
        message = discovery_pb2.DiscoveryResponse(
            version_info="v",
            type_url=types.CLUSTER,
            nonce=str(i),
            resources=[any_pb2.Any(type_url=res.type_url, value=res.payload) for res in resources],
        )
        built = message.SerializeToString()
    t2 = time.perf_counter()
    assert discovery_pb2.DiscoveryResponse.FromString(
        joined
    ) == discovery_pb2.DiscoveryResponse.FromString(built)
    return {
        "response_bytes": len(joined),
        "join_us": (t1 - t0) / rounds * 1e6,
        "protobuf_build_us": (t2 - t1) / rounds * 1e6,
    }


async def server_main(stream_counts: list[int], generations: int) -> None:
    t0 = time.perf_counter()
    snapshots = [snapshot(g) for g in range(3)]
    print(
        f"built 3 snapshots of {CLUSTERS} clusters + {CLUSTERS} endpoints in "
        f"{(time.perf_counter() - t0) * 1000:.0f} ms (python objects)"
    )
    micro = framing_micro(snapshots[0])
    print(
        f"framing one {CLUSTERS}-cluster CDS response ({micro['response_bytes'] / 1000:.0f} kB): "
        f"join of shared bytes {micro['join_us']:.0f} us, "
        f"protobuf build+serialize {micro['protobuf_build_us']:.0f} us"
    )
    for streams in stream_counts:
        result = await run_case(streams, generations, snapshots)
        print(
            f"{streams:>3} stream(s): {result['responses']} responses, "
            f"{result['bytes'] / 1e6:.1f} MB in {result['elapsed_s']:.2f} s -> "
            f"{result['responses_per_s']:.0f} responses/s, {result['mbytes_per_s']:.1f} MB/s "
            f"(fan-out only: {result['fanout_responses_per_s']:.0f} responses/s, "
            f"{result['fanout_mbytes_per_s']:.1f} MB/s); "
            f"snapshot prepare {result['prep_ms_median']:.1f} ms, "
            f"generation end-to-end {result['generation_ms_median']:.1f} ms (medians); "
            f"server CPU {result['server_cpu_share'] * 100:.0f}% of one core, "
            f"{result['server_cpu_us_per_response']:.0f} us/response incl. gRPC; "
            f"{result['client']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 100])
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client_main(args.port, args.streams[0]))
    else:
        asyncio.run(server_main(args.streams, args.generations))


if __name__ == "__main__":
    main()
