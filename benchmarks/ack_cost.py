"""What one SotW ACK costs the xDS server, in-process (no gRPC): an Envoy ACKs every EDS
response with its whole subscription (one name per EDS cluster: ~1,400 on the benchmark's
1,000-service mesh), so a push to P proxies brings P such requests.

    .venv/bin/python -m benchmarks.ack_cost [--names 1400] [--repeat 2000]

Times the request's parse and the stream's handling of its bytes (as gRPC gives them): an
ACK of the response in flight with the same names (told from its bytes, not parsed), the same
ACK again (parsed), and a request that changes one name.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds import SnapshotCache, XdsCore, types
from controlplane.xds.stream import SOTW

NODE = "sidecar~10.0.0.1~app-0.ns-0~ns-0.svc.cluster.local"


def _request(names: list[str], nonce: str = "", version: str = "") -> bytes:
    return discovery_pb2.DiscoveryRequest(
        type_url=types.ENDPOINT, resource_names=names, response_nonce=nonce, version_info=version
    ).SerializeToString()


def _per_request_us(stream, raw: bytes, repeat: int, *, pending: bool = False) -> float:
    state = stream.types[types.ENDPOINT]
    started = time.perf_counter()
    for _ in range(repeat):
        state.pending = pending  # an ACK of the response in flight (else a repeated one)
        # What the stream's reader does with the bytes gRPC gives it:
        if not stream._acked_unchanged(raw):
            stream._apply(*stream._parse(raw))
    return (time.perf_counter() - started) / repeat * 1e6


async def measure(count: int, repeat: int) -> dict[str, float]:
    names = [f"outbound|8080||svc-{i}.ns-{i % 10}.svc.cluster.local" for i in range(count)]
    cache = SnapshotCache()
    cache.set_snapshot("g", {types.ENDPOINT: [endpoint_pb2.ClusterLoadAssignment(cluster_name=n)
                                              for n in names]})
    core = XdsCore(cache, group_of=lambda node, identity: "g")
    stream = core.open_stream(SOTW)  # driven by hand: its requests applied, responses built
    first = discovery_pb2.DiscoveryRequest(type_url=types.ENDPOINT, resource_names=names)
    first.node.id = NODE
    stream.node.CopyFrom(first.node)
    stream.group = "g"
    stream._apply(first)
    assert stream._next_response() is not None
    state = stream.types[types.ENDPOINT]
    ack = _request(names, state.nonce_sent, state.version_sent or "")
    same = _per_request_us(stream, ack, repeat, pending=True)
    repeated = _per_request_us(stream, ack, repeat)
    changed_names = [_request(names[:-1] + [f"extra-{k}"], state.nonce_sent,
                              state.version_sent or "") for k in range(2)]
    started = time.perf_counter()
    for k in range(repeat // 10):
        stream._apply(*stream._parse(changed_names[k % 2]))
    changed = (time.perf_counter() - started) / (repeat // 10) * 1e6
    parse_only = discovery_pb2.DiscoveryRequest.FromString
    started = time.perf_counter()
    for _ in range(repeat):
        parse_only(ack)
    parse = (time.perf_counter() - started) / repeat * 1e6
    return {"names": count, "parse us": parse, "ACK us": same,
            "ACK again us (parse included)": repeated,
            "names changed us (parse included)": changed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, default=1400)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    row = asyncio.run(measure(args.names, args.repeat))
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(f"{v:,.1f}" for v in row.values()) + " |")


if __name__ == "__main__":
    main()
