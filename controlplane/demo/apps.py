"""The demo's Bookinfo-like workloads: one tiny HTTP server per process, stdlib only.

Each app answers any GET with JSON naming itself (service, version), the SPIFFE
identity of its caller (from ``x-forwarded-client-cert``, which the inbound
sidecar sets when the call came over mTLS) and the results of its own
downstream calls. Downstream calls go through the workload's own sidecar: the
app connects to the sidecar's outbound listener (``--egress``) and names the
service in the Host header, as an app in a pod with a Sidecar ``bind`` would.
The ``end-user`` header is propagated so that header-based routing works on
every hop. ``/healthz`` answers without calling anyone (readiness checks).

    python -m controlplane.demo.apps --service reviews --version v2 \
        --listen 127.0.10.4:8080 --egress 127.0.10.104:9080 --call http://ratings:9080/
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PROPAGATED_HEADERS = ("end-user", "x-request-id", "x-b3-traceid", "traceparent")
XFCC = "x-forwarded-client-cert"
DOWNSTREAM_TIMEOUT_SECONDS = 5.0


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def caller_identity(xfcc: str | None) -> str | None:
    """The ``URI=`` of the last (nearest) element of an XFCC header, or None.

    ``By=spiffe://a;Hash=..;Subject="";URI=spiffe://cluster.local/ns/default/sa/x``
    """
    if not xfcc:
        return None
    nearest = _split_outside_quotes(xfcc, ",")[-1]
    for pair in _split_outside_quotes(nearest, ";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key.lower() == "uri":
            return value.strip('"') or None
    return None


@dataclass(frozen=True)
class Downstream:
    """A service this app calls: the URL it names, and where to connect (its sidecar)."""

    name: str
    host_header: str
    path: str
    connect_host: str
    connect_port: int

    @staticmethod
    def parse(url: str, egress: str | None) -> Downstream:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--call {url!r}: want http://service:port/path")
        port = parts.port or 80
        connect_host, connect_port = parts.hostname, port
        if egress:
            connect_host, _, egress_port = egress.rpartition(":")
            connect_port = int(egress_port)
        return Downstream(
            name=parts.hostname.split(".")[0],
            host_header=f"{parts.hostname}:{port}",
            path=parts.path or "/",
            connect_host=connect_host,
            connect_port=connect_port,
        )


@dataclass(frozen=True)
class AppConfig:
    service: str
    version: str
    listen_host: str
    listen_port: int
    workload: str = ""
    downstreams: tuple[Downstream, ...] = field(default_factory=tuple)


class _Connections(threading.local):
    """One keep-alive connection per downstream per server thread."""

    def __init__(self) -> None:
        self.by_target: dict[tuple[str, int], http.client.HTTPConnection] = {}


def call_downstream(
    target: Downstream, headers: dict[str, str], pool: _Connections
) -> dict[str, object]:
    """GET the downstream once (a fresh connection is retried once if a kept one went stale)."""
    key = (target.connect_host, target.connect_port)
    started = time.perf_counter()
    for attempt in (1, 2):
        conn = pool.by_target.get(key)
        reused = conn is not None
        if conn is None:
            conn = http.client.HTTPConnection(*key, timeout=DOWNSTREAM_TIMEOUT_SECONDS)
            pool.by_target[key] = conn
        try:
            conn.request("GET", target.path, headers={"Host": target.host_header, **headers})
            response = conn.getresponse()
            raw = response.read()
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                pool.by_target.pop(key, None)
            try:
                body: object = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")[:200]
            return {
                "status": response.status,
                "body": body,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            }
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            pool.by_target.pop(key, None)
            if attempt == 1 and reused:
                continue
            return {
                "status": 0,
                "error": f"{type(exc).__name__}: {exc}",
                "ms": round((time.perf_counter() - started) * 1000, 2),
            }
    raise AssertionError("unreachable")


def make_handler(config: AppConfig) -> type[BaseHTTPRequestHandler]:
    pool = _Connections()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive with the sidecar
        server_version = f"demo-{config.service}/{config.version}"

        def do_GET(self) -> None:
            if self.path.startswith("/healthz"):
                self._reply(200, {"status": "ok", "service": config.service})
                return
            forwarded = {h: v for h in PROPAGATED_HEADERS if (v := self.headers.get(h))}
            calls = {d.name: call_downstream(d, forwarded, pool) for d in config.downstreams}
            self._reply(
                200,
                {
                    "service": config.service,
                    "version": config.version,
                    "workload": config.workload,
                    "caller": caller_identity(self.headers.get(XFCC)),
                    "end_user": self.headers.get("end-user"),
                    "calls": calls,
                },
            )

        def _reply(self, status: int, payload: dict[str, object]) -> None:
            body = json.dumps(payload, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request would drown the demo's logs

    return Handler


class AppServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def make_server(config: AppConfig) -> AppServer:
    return AppServer((config.listen_host, config.listen_port), make_handler(config))


def parse_args(argv: Sequence[str] | None = None) -> AppConfig:
    parser = argparse.ArgumentParser(prog="python -m controlplane.demo.apps")
    parser.add_argument("--service", "--name", required=True, help="service name, e.g. reviews")
    parser.add_argument("--version", default="v1")
    parser.add_argument("--workload", default="", help="workload name, e.g. reviews-v2")
    parser.add_argument("--listen", required=True, help="HOST:PORT this app listens on")
    parser.add_argument(
        "--egress", default=None, help="HOST:PORT of the sidecar's outbound listener"
    )
    parser.add_argument(
        "--call", action="append", default=[], help="downstream URL, e.g. http://ratings:9080/"
    )
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    return AppConfig(
        service=args.service,
        version=args.version,
        workload=args.workload or f"{args.service}-{args.version}",
        listen_host=host,
        listen_port=int(port),
        downstreams=tuple(Downstream.parse(url, args.egress) for url in args.call),
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    server = make_server(config)
    # SIGTERM from the supervisor: stop serving and exit 0.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(
        f"{config.workload} listening on {config.listen_host}:{config.listen_port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
