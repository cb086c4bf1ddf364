"""A Zipkin-compatible collector for tests: accepts ``POST /api/v2/spans`` (JSON v2, as
Envoy's zipkin tracer sends with HTTP_JSON) on loopback and records every span."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_POST(self) -> None:
        body = self._body()
        ok = self.path == "/api/v2/spans"
        if ok:
            spans = json.loads(body)
            with self.server.lock:
                self.server.spans.extend(spans)
                self.server.hosts.append(self.headers.get("host", ""))
        self.send_response(202 if ok else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lock = threading.Lock()
        self.spans: list[dict[str, Any]] = []
        self.hosts: list[str] = []


class ZipkinCollector:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.server = _Server((host, 0), _Handler)
        self.host = host
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[dict[str, Any]]:
        with self.server.lock:
            return list(self.server.spans)

    def spans_of(self, service: str) -> list[dict[str, Any]]:
        return [s for s in self.spans() if s.get("localEndpoint", {}).get("serviceName") == service]

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
