"""An xDS subscription flood against a real ``controlplane serve``: what it costs the server.

    .venv/bin/python benchmarks/xds_flood.py [--streams 3] [--megabytes 14] [--case ...]

Starts the control plane on free loopback ports, then for each case opens ``--streams``
delta ADS streams at once, each subscribing to EDS names worth ``--megabytes`` MB, and
reads whatever comes back. While it runs, ``/healthz/ready`` is polled every 50 ms (the
largest latency is reported) and the server's RSS is sampled; a few seconds after the
flood, RSS is read again (memory that is never released shows there).

Cases:
  anonymous-tls     no credential, on the TLS port (as an attacker anywhere on the network)
  anonymous-chunks  the same, the megabytes in requests under the size limit
                    (``--chunk-mb`` each)
  token-tls         a valid token, on the TLS port: the caps for authenticated clients
  token-chunks      a valid token, requests under the size limit: the name caps
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import grpc
import psutil
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane.auth import local_token_issuer
from tests.harness.control_plane import ServedControlPlane, served_control_plane

ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
DELTA_ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
CASES = ("anonymous-tls", "anonymous-chunks", "token-tls", "token-chunks")


def names_worth(megabytes: float, offset: int = 0) -> list[str]:
    """EDS-like names (about 56 bytes each on the wire) adding up to ``megabytes``."""
    count = int(megabytes * 1_000_000 / 56)
    return [f"outbound|8080||flood-{offset + i:08d}.default.svc.cluster.local" for i in range(count)]


@dataclass
class Probe:
    """Polls /healthz/ready from a thread (so a stalled server cannot stall the probe)."""

    cp: ServedControlPlane
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    rss: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        process = psutil.Process(self.cp.process.pid)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                url = f"http://127.0.0.1:{self.cp.monitoring_port}/healthz/ready"
                with urllib.request.urlopen(url, timeout=60) as response:
                    response.read()
            except OSError:
                self.failures += 1
            self.latencies.append(time.monotonic() - started)
            self.rss.append(process.memory_info().rss)
            self._stop.wait(0.05)

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def one_stream(cp: ServedControlPlane, token: str | None, requests: list[list[str]],
                     index: int, hold: float) -> str:
    credentials = grpc.ssl_channel_credentials((cp.ca_dir / "root-cert.pem").read_bytes())
    options = [
        ("grpc.ssl_target_name_override", "istiod.istio-system.svc"),
        ("grpc.max_receive_message_length", -1),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    node = base_pb2.Node(id=f"sidecar~127.0.31.{index + 1}~flood-{index}.default~default.svc.cluster.local")
    async with grpc.aio.secure_channel(f"127.0.0.1:{cp.xds_tls_port}", credentials, options) as channel:
        call = channel.stream_stream(DELTA_ADS, request_serializer=None, response_deserializer=None)(
            metadata=metadata
        )

        async def write() -> None:  # alongside the reads, as a client does
            for i, names in enumerate(requests):
                request = discovery_pb2.DeltaDiscoveryRequest(
                    type_url=ENDPOINT, resource_names_subscribe=names
                )
                if i == 0:
                    request.node.CopyFrom(node)
                try:
                    await call.write(request.SerializeToString())
                except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                    return  # refused: the reads tell how

        writer = asyncio.create_task(write())
        try:
            received = resources = 0
            async with asyncio.timeout(120):
                # Read until every name was answered (a resource or a removal each), as a
                # client would, then hold the stream open as an attacker would.
                wanted = sum(len(names) for names in requests)
                while resources < wanted and (raw := await call.read()) is not grpc.aio.EOF:
                    received += len(raw)
                    response = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
                    resources += len(response.resources) + len(response.removed_resources)
            await asyncio.sleep(hold)
            return f"served ({received / 1e6:.0f} MB back)"
        except grpc.aio.AioRpcError as error:
            return error.code().name
        except TimeoutError:
            return "no answer in 120 s"
        finally:
            writer.cancel()
            call.cancel()


async def flood(cp: ServedControlPlane, token: str | None, streams: int, megabytes: float,
                chunk_mb: float | None, hold: float) -> Counter[str]:
    plans = []
    for s in range(streams):
        if chunk_mb:
            chunks = int(megabytes // chunk_mb) or 1
            plans.append([names_worth(chunk_mb, (s * chunks + c) * 10**6) for c in range(chunks)])
        else:
            plans.append([names_worth(megabytes, s * 10**6)])
    results = await asyncio.gather(*(one_stream(cp, token, plan, s, hold) for s, plan in enumerate(plans)))
    return Counter(results)


def run_case(cp: ServedControlPlane, case: str, args: argparse.Namespace) -> None:
    token = None if case.startswith("anonymous") else local_token_issuer(cp.ca_dir).mint("default", "flood")
    process = psutil.Process(cp.process.pid)
    before = process.memory_info().rss
    started = time.monotonic()
    with Probe(cp) as probe:
        outcome = asyncio.run(flood(cp, token, args.streams, args.megabytes,
                                    args.chunk_mb if case.endswith("chunks") else None, args.hold))
        seconds = time.monotonic() - started
        time.sleep(args.settle)
    after = process.memory_info().rss
    peak = max([before, after, *probe.rss])
    answers = ", ".join(f"{n} x {what}" for what, n in sorted(outcome.items()))
    print(f"{case:16s} {args.streams} streams x {args.megabytes:g} MB, held {args.hold:g} s, "
          f"{seconds:.1f} s in all: {answers}")
    print(f"{'':16s} RSS {before / 1e6:.0f} MB before, peak {peak / 1e6:.0f} MB, "
          f"{after / 1e6:.0f} MB {args.settle:g} s after the streams closed")
    lat = probe.latencies or [0.0]
    print(f"{'':16s} /healthz/ready max {max(lat) * 1000:.0f} ms, median "
          f"{statistics.median(lat) * 1000:.0f} ms over {len(lat)} probes, {probe.failures} failed")
    refused = [line for line in cp.get("/metrics")[1].splitlines()
               if line.startswith("pilot_xds_refused") and not line.startswith("#")]
    for line in refused:
        print(f"{'':16s} {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=14.0)
    parser.add_argument("--chunk-mb", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=5.0,
                        help="seconds each stream stays open once answered (as an attacker's)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after the flood before RSS is read again")
    parser.add_argument("--repeat", type=int, default=1,
                        help="floods per case on the same server (does memory keep growing?)")
    parser.add_argument("--case", action="append", choices=CASES,
                        help="repeatable; default: every case, each on a fresh server")
    args = parser.parse_args()
    for case in args.case or CASES:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            (workdir / "config").mkdir()
            with served_control_plane(workdir, workdir / "config") as cp:
                for _ in range(args.repeat):
                    run_case(cp, case, args)


if __name__ == "__main__":
    main()
