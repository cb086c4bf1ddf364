"""External authorizers on loopback for AuthorizationPolicy CUSTOM tests, deciding as Istio's
sample ext-authz server does: a request carrying ``x-ext-authz: allow`` is allowed, anything
else denied (403), with ``x-ext-authz-check-result: allowed|denied`` in the answer.

    with HttpAuthorizer() as http, GrpcAuthorizer() as grpc:   # 127.0.0.1, free ports
        http.port, grpc.port, http.checks, grpc.checks
        grpc.allow_tcp = False   # TCP connections (no HTTP attributes) are denied

``HttpAuthorizer`` speaks Envoy's HTTP ext_authz protocol (the check is an HTTP request: 200
allows, anything else denies); ``GrpcAuthorizer`` is Envoy's ``envoy.service.auth.v3.Authorization``
service, served with grpcio from xds-protos' generated stubs.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2 as auth_pb2
from envoy.service.auth.v3 import external_auth_pb2_grpc as auth_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

ALLOW_HEADER = "x-ext-authz"
RESULT_HEADER = "x-ext-authz-check-result"
DENIED_BODY = b"denied by ext_authz for not found header `x-ext-authz: allow` in the request"


@dataclass(frozen=True)
class Check:
    """One check the authorizer answered: what it saw and what it said."""

    path: str
    headers: dict[str, str] = field(default_factory=dict)
    allowed: bool = False


class _Checks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Check] = []

    def add(self, check: Check) -> None:
        with self._lock:
            self._items.append(check)

    def snapshot(self) -> list[Check]:
        with self._lock:
            return list(self._items)


# --- HTTP ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def _check(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        allowed = headers.get(ALLOW_HEADER) == "allow"
        self.server.checks.add(Check(self.path, headers, allowed))
        body = b"" if allowed else DENIED_BODY
        self.send_response(200 if allowed else 403)
        self.send_header(RESULT_HEADER, "allowed" if allowed else "denied")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _check

    def log_message(self, *args: object) -> None:
        pass


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    checks: _Checks


class HttpAuthorizer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = _HttpServer((host, 0), _Handler)
        self._server.checks = _Checks()
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def checks(self) -> list[Check]:
        return self._server.checks.snapshot()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# --- gRPC ------------------------------------------------------------------------------------


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value))


class _Authorization(auth_grpc.AuthorizationServicer):
    def __init__(self, owner: GrpcAuthorizer) -> None:
        self.owner = owner

    def Check(self, request: auth_pb2.CheckRequest, context: Any) -> auth_pb2.CheckResponse:
        http = request.attributes.request.http
        headers = dict(http.headers)
        if http.method:  # an HTTP request
            allowed = headers.get(ALLOW_HEADER) == "allow"
        else:  # a TCP connection: no HTTP attributes
            allowed = self.owner.allow_tcp
        self.owner._checks.add(Check(http.path, headers, allowed))
        if allowed:
            return auth_pb2.CheckResponse(
                status=status_pb2.Status(code=code_pb2.OK),
                ok_response=auth_pb2.OkHttpResponse(headers=[_header(RESULT_HEADER, "allowed")]),
            )
        return auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED),
            denied_response=auth_pb2.DeniedHttpResponse(
                status=http_status_pb2.HttpStatus(code=http_status_pb2.Forbidden),
                headers=[_header(RESULT_HEADER, "denied")],
                body=DENIED_BODY.decode(),
            ),
        )


class GrpcAuthorizer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.allow_tcp = True
        self._checks = _Checks()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        auth_grpc.add_AuthorizationServicer_to_server(_Authorization(self), self._server)
        self.port = self._server.add_insecure_port(f"{host}:0")

    @property
    def checks(self) -> list[Check]:
        return self._checks.snapshot()

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait(timeout=5)
