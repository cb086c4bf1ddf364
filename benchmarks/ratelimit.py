"""Rate limits: how many decisions per second `controlplane ratelimit` makes (counters in
memory and in Redis), and how much latency Envoy's rate limit filters add to a request.

    .venv/bin/python benchmarks/ratelimit.py [--seconds 5] [--concurrency 32] [--requests 2000] [--json]

Parts (each starts what it needs on free loopback ports and stops it):
  decider       the decision alone, in-process (no gRPC): one request after another, and for
                Redis also ``--concurrency`` at a time (their increments share pipelines)
  grpc          ShouldRateLimit over gRPC against `controlplane ratelimit` (a subprocess),
                ``--concurrency`` calls in flight from one asyncio client
  envoy         one Envoy (``--concurrency 1``) in front of a loopback app, sequential
                keep-alive requests: no rate limit filter, local_ratelimit, ratelimit with the
                RLS counting in memory, and in Redis; p50/p90/p99 of each and the added p50
Redis is Debian's redis-server, started with a tmp dir (skipped where it is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import psutil
import yaml
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from controlplane.processes import stop_process
from controlplane.ratelimit.config import Config, parse_domain
from controlplane.ratelimit.counters import MemoryCounters, RedisCounters
from controlplane.ratelimit.service import RateLimitDecider

DOMAIN = "bench"
RLS_CONFIG = {"domain": DOMAIN, "descriptors": [
    {"key": "generic_key", "value": "shared", "rate_limit": {"unit": "second", "requests_per_unit": 10**9}},
    {"key": "remote_address", "rate_limit": {"unit": "minute", "requests_per_unit": 10**9}},
]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(condition: Any, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    last: object = None
    while True:
        try:
            if condition():
                return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        if time.monotonic() > end:
            raise TimeoutError(f"{condition} not reached: {last!r}")
        time.sleep(0.05)


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield p
        finally:
            stop_process(p)


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with process([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "",
                  "--appendonly", "no"], workdir / "redis.log"):
        def pong() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        wait(pong)
        yield f"redis://127.0.0.1:{port}/0"


def request(i: int) -> rls_pb2.RateLimitRequest:
    req = rls_pb2.RateLimitRequest(domain=DOMAIN)
    req.descriptors.add().entries.add(key="generic_key", value="shared")
    req.descriptors.add().entries.add(key="remote_address", value=f"10.0.{i % 250}.{i % 200}")
    return req


async def decider_rate(counters: Any, seconds: float, concurrency: int = 1) -> float:
    """Decisions per second in-process, ``concurrency`` requests at a time (Redis batches the
    increments of concurrent requests into one pipeline)."""
    decider = RateLimitDecider(Config({DOMAIN: parse_domain(RLS_CONFIG)}), counters)
    requests = [request(i) for i in range(1000)]
    await decider.should_rate_limit(requests[0])
    end = time.perf_counter() + seconds

    async def worker(w: int) -> int:
        n = 0
        while time.perf_counter() < end:
            await decider.should_rate_limit(requests[(w * 31 + n) % 1000])
            n += 1
        return n

    start = time.perf_counter()
    count = sum(await asyncio.gather(*(worker(w) for w in range(concurrency))))
    await counters.close()
    return count / (time.perf_counter() - start)


async def grpc_rate(port: int, seconds: float, concurrency: int) -> tuple[float, float]:
    """(decisions per second, p50 call latency in ms)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        await stub.ShouldRateLimit(request(0), timeout=5)
        requests = [request(i) for i in range(1000)]
        latencies: list[float] = []
        end = time.perf_counter() + seconds

        async def worker(w: int) -> int:
            n = 0
            while time.perf_counter() < end:
                t = time.perf_counter()
                await stub.ShouldRateLimit(requests[(w * 31 + n) % 1000], timeout=5)
                latencies.append(time.perf_counter() - t)
                n += 1
            return n

        start = time.perf_counter()
        done = await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
        return sum(done) / elapsed, statistics.median(latencies) * 1000


@contextlib.contextmanager
def rls(workdir: Path, redis_url: str | None, name: str) -> Iterator[tuple[int, int]]:
    """(port, pid) of a `controlplane ratelimit` subprocess."""
    config = workdir / "rls.yaml"
    config.write_text(yaml.safe_dump(RLS_CONFIG))
    port = free_port()
    args = [sys.executable, "-m", "controlplane", "ratelimit", "--config", str(config), "--port", str(port)]
    if redis_url:
        args += ["--redis-url", redis_url]
    with process(args, workdir / f"{name}.log") as p:
        def up() -> bool:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                rls_pb2_grpc.RateLimitServiceStub(ch).ShouldRateLimit(request(0), timeout=1)
                return True
        wait(up)
        yield port, p.pid


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    def log_message(self, *args: object) -> None:
        pass


def _typed(type_name: str, **fields: Any) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def envoy_bootstrap(listen: int, admin: int, app: int, mode: str, rls_port: int | None) -> dict[str, Any]:
    http_filters: list[dict[str, Any]] = []
    route: dict[str, Any] = {"match": {"prefix": "/"}, "route": {"cluster": "app"}}
    clusters: list[dict[str, Any]] = [_static("app", app)]
    if mode == "local":
        http_filters.append({"name": "envoy.filters.http.local_ratelimit", "typed_config": _typed(
            "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", stat_prefix="local",
            token_bucket={"max_tokens": 10**9, "tokens_per_fill": 10**9, "fill_interval": "1s"},
            filter_enabled={"default_value": {"numerator": 100}}, filter_enforced={"default_value": {"numerator": 100}})})
    elif mode.startswith("global"):
        http_filters.append({"name": "envoy.filters.http.ratelimit", "typed_config": _typed(
            "envoy.extensions.filters.http.ratelimit.v3.RateLimit", domain=DOMAIN, failure_mode_deny=True,
            timeout="2s", rate_limit_service={"grpc_service": {"envoy_grpc": {"cluster_name": "rls"}},
                                              "transport_api_version": "V3"})})
        route["route"]["rate_limits"] = [{"actions": [{"generic_key": {"descriptor_value": "shared"}}]},
                                         {"actions": [{"remote_address": {}}]}]
        clusters.append(_static("rls", rls_port or 0, http2=True))
    http_filters.append({"name": "envoy.filters.http.router", "typed_config": _typed(
        "envoy.extensions.filters.http.router.v3.Router")})
    hcm = _typed("envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                 stat_prefix="bench", http_filters=http_filters,
                 route_config={"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]})
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "in", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                            "typed_config": hcm}]}]}],
            "clusters": clusters,
        },
    }


def _static(name: str, port: int, http2: bool = False) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
    if http2:
        cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _typed(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", explicit_http_config={"http2_protocol_options": {}})}
    return cluster


def envoy_latency(workdir: Path, app_port: int, mode: str, rls_port: int | None, requests: int) -> dict[str, float]:
    envoy = shutil.which("envoy") or str(Path(sys.prefix) / "bin" / "envoy")
    listen, admin = free_port(), free_port()
    config = workdir / f"envoy-{mode}.yaml"
    config.write_text(yaml.safe_dump(envoy_bootstrap(listen, admin, app_port, mode, rls_port)))
    with process([envoy, "-c", str(config), "--concurrency", "1", "--disable-hot-restart", "-l", "warning"],
                 workdir / f"envoy-{mode}.log"):
        def ready() -> bool:
            c = http.client.HTTPConnection("127.0.0.1", admin, timeout=1)
            c.request("GET", "/ready")
            return c.getresponse().status == 200
        wait(ready)
        conn = http.client.HTTPConnection("127.0.0.1", listen, timeout=5)
        samples: list[float] = []
        for i in range(requests + 200):
            t = time.perf_counter()
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{mode}: HTTP {response.status}")
            if i >= 200:  # warm-up excluded
                samples.append((time.perf_counter() - t) * 1000)
        conn.close()
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
    return {"p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="gRPC calls in flight")
    parser.add_argument("--requests", type=int, default=2000, help="requests per Envoy latency measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis_url:
        workdir = Path(tmp)
        out["decider_memory_per_s"] = asyncio.run(decider_rate(MemoryCounters(), args.seconds))
        if redis_url:
            out["decider_redis_per_s"] = asyncio.run(decider_rate(RedisCounters(redis_url), args.seconds))
            out["decider_redis_concurrent_per_s"] = asyncio.run(
                decider_rate(RedisCounters(redis_url), args.seconds, args.concurrency))
        stores = [("memory", None)] + ([("redis", redis_url)] if redis_url else [])
        for name, url in stores:
            with rls(workdir, url, f"rls-{name}") as (port, pid):
                server = psutil.Process(pid)
                cpu_before = sum(server.cpu_times()[:2])
                started = time.perf_counter()
                rate, p50 = asyncio.run(grpc_rate(port, args.seconds, args.concurrency))
                cpu = sum(server.cpu_times()[:2]) - cpu_before
                decisions = rate * (time.perf_counter() - started)
                out[f"grpc_{name}_per_s"], out[f"grpc_{name}_p50_ms"] = rate, p50
                # The client shares the machine's cores: per CPU-second of the server is its own cost.
                out[f"grpc_{name}_per_server_cpu_s"] = decisions / cpu if cpu else 0.0
        server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            app_port = server.server_address[1]
            latency: dict[str, Any] = {}
            latency["none"] = envoy_latency(workdir, app_port, "none", None, args.requests)
            latency["local"] = envoy_latency(workdir, app_port, "local", None, args.requests)
            for name, url in stores:
                with rls(workdir, url, f"rls-envoy-{name}") as (port, _):
                    latency[f"global_{name}"] = envoy_latency(workdir, app_port, f"global_{name}", port, args.requests)
            base = latency["none"]["p50_ms"]
            for mode, figures in latency.items():
                figures["added_p50_ms"] = figures["p50_ms"] - base
            out["envoy_latency"] = latency
        finally:
            server.shutdown()
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"decisions/s in-process: memory {out['decider_memory_per_s']:,.0f}"
          + (f", redis {out['decider_redis_per_s']:,.0f} (one at a time), "
             f"{out['decider_redis_concurrent_per_s']:,.0f} ({args.concurrency} at a time)"
             if "decider_redis_per_s" in out else ""))
    for name, _ in stores:
        print(f"decisions/s over gRPC ({args.concurrency} in flight), {name}: {out[f'grpc_{name}_per_s']:,.0f}"
              f" (p50 {out[f'grpc_{name}_p50_ms']:.2f} ms; {out[f'grpc_{name}_per_server_cpu_s']:,.0f} per"
              " CPU-second of the server)")
    for mode, f in out["envoy_latency"].items():
        print(f"envoy {mode:14s} p50 {f['p50_ms']:.3f} ms  p90 {f['p90_ms']:.3f}  p99 {f['p99_ms']:.3f}"
              f"  added p50 {f['added_p50_ms']:+.3f} ms")


if __name__ == "__main__":
    main()
