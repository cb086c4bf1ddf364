"""A tiny loopback HTTP app for routing tests: answers with its own name and echoes headers.

    with HttpUpstream("v1") as up:          # binds 127.0.0.1 on a free port
        ... up.port ...

With ``tls=`` a PEM certificate and key, it speaks HTTPS, records the SNI names clients sent
(``server_names``) and closes each connection after its answer, so that every request is a new
handshake (a test that changes what the client trusts sees the change at once).

Response: 200, header `x-upstream: <name>`, JSON body
{"name": ..., "method": ..., "path": ..., "headers": {lower-case name: value}}.
"""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol, Self


class KeyPair(Protocol):
    cert: bytes
    key: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "name": self.server.upstream_name,
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.server.requests += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream", self.server.upstream_name)
        if self.server.tls is not None:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream_name = ""
    requests = 0
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is None:
            return sock, address
        sock.settimeout(5)
        try:
            return self.tls.wrap_socket(sock, server_side=True), address
        except (ssl.SSLError, OSError):
            sock.close()
            raise


class HttpUpstream:
    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0, *, tls: KeyPair | None = None) -> None:
        self.name = name
        self.server_names: list[str | None] = []
        self._server = _Server((host, port), _Handler)
        self._server.upstream_name = name
        if tls is not None:
            self._server.tls = self._tls_context(tls)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _tls_context(self, pair: KeyPair) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:  # ssl loads a chain from files only
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_bytes(pair.cert)
            key.write_bytes(pair.key)
            context.load_cert_chain(cert, key)
        context.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)  # type: ignore[assignment,func-returns-value]
        return context

    @property
    def requests(self) -> int:
        return self._server.requests

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
