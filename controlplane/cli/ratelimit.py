"""``controlplane ratelimit``: a rate limit service for Envoy's ``ratelimit`` filter (the
global rate limits of Istio's task), configured with envoyproxy/ratelimit's descriptor YAML.

    controlplane ratelimit --config ratelimit.yaml --port 8081 --redis-url redis://127.0.0.1:6379

Without ``--redis-url`` the counters are kept in memory: right for one replica (the local
mesh); replicas behind one Service need Redis to share them. SIGHUP reads the config again
(a config with errors is reported and the running one kept).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "ratelimit",
        help="serve Envoy's rate limit API (RLS) with envoyproxy/ratelimit's config, counters in Redis or memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, action="append", required=True, metavar="PATH",
                   help="a descriptor YAML file or a folder of them (one domain per document); repeatable")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8081, help="gRPC port (default: %(default)s, as envoyproxy/ratelimit)")
    p.add_argument("--redis-url", default="", metavar="URL",
                   help="redis://host:port/db for shared counters (default: in memory)")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus /metrics on this port (same --host); default: none")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controlplane.model.base import ValidationError
    from controlplane.ratelimit.config import load_config

    try:
        config = load_config(args.config)
    except (OSError, ValidationError) as exc:
        print(f"controlplane ratelimit: {exc}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{len(config.domains)} domain(s): {', '.join(sorted(config.domains))}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_serve(args, config))


def _reload(args: argparse.Namespace, decider: Any) -> None:
    from controlplane.model.base import ValidationError
    from controlplane.ratelimit.config import load_config

    log = logging.getLogger("controlplane.ratelimit")
    try:
        decider.config = load_config(args.config)
    except (OSError, ValidationError) as exc:
        log.error("config not reloaded, the running one is kept: %s", exc)
        return
    log.info("config reloaded: domains %s", ", ".join(sorted(decider.config.domains)))


async def _serve(args: argparse.Namespace, config: object) -> int:
    from controlplane.ratelimit.counters import Counters, MemoryCounters, RedisCounters
    from controlplane.ratelimit.server import RateLimitServer
    from controlplane.ratelimit.service import RateLimitDecider

    counters: Counters = RedisCounters(args.redis_url) if args.redis_url else MemoryCounters()
    decider = RateLimitDecider(config, counters)  # type: ignore[arg-type]
    server = RateLimitServer(decider)
    port = server.add_port(args.host, args.port)
    await server.start()
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        from controlplane.ratelimit.metrics import registry_for

        start_http_server(args.metrics_port, addr=args.host, registry=registry_for(decider.stats))
    store = args.redis_url or "memory"
    logging.getLogger("controlplane.ratelimit").info(
        "rate limit service on %s:%d, domains %s, counters in %s",
        args.host, port, ", ".join(sorted(config.domains)), store,  # type: ignore[attr-defined]
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(args, decider))
    try:
        await stop.wait()
    finally:
        await server.stop()
    return 0
