"""A loopback HTTPS app with its own certificate, for tests where the TLS itself is checked
(TLS origination, passthrough):

    with TlsUpstream(workdir, "backend", ca.issue("backend.example.com"), client_ca=None) as up:
        ... up.port ...

It answers 200 with JSON ``{"name", "host", "client", "serial"}``: the client certificate's
common name and serial number when ``client_ca`` makes it require one (else None). One
connection per request.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

from tests.harness.pki import Pem


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream_name = ""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        peer = self.connection.getpeercert() or {}  # type: ignore[attr-defined]
        subject = dict(item for rdn in peer.get("subject", ()) for item in rdn)
        body = json.dumps({
            "name": self.server.upstream_name, "host": self.headers.get("host"),
            "client": subject.get("commonName"), "serial": peer.get("serialNumber"),
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class TlsUpstream:
    def __init__(self, workdir: Path, name: str, pem: Pem, client_ca: bytes | None = None) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        chain, key = workdir / f"{name}.pem", workdir / f"{name}-key.pem"
        chain.write_bytes(pem.cert)
        key.touch(mode=0o600)
        key.write_bytes(pem.key)
        ctx.load_cert_chain(str(chain), str(key))
        if client_ca is not None:
            ctx.load_verify_locations(cadata=client_ca.decode())
            ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.upstream_name = name
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
