"""A minimal asyncio HTTP/1.1 server (one request per connection, bounded header and body
sizes, optional TLS) for the small endpoints that do not earn a web framework: the injection
webhook and the agent's health and stats ports."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("controlplane.httpd")

MAX_HEADER_LINES = 100
READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class HttpServer:
    handler: Handler
    max_body_bytes: int = 4 * 1024 * 1024
    _server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        self._server = await asyncio.start_server(self._handle, host, port, ssl=tls)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _read(self, reader: asyncio.StreamReader) -> Request | Response:
        request_line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        method, target, _ = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES + 1):
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            return Response(431, b"too many headers\n")
        length = int(headers.get("content-length", "0") or 0)
        if length < 0 or length > self.max_body_bytes:
            return Response(413, f"body over {self.max_body_bytes} bytes\n".encode())
        body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT) if length else b""
        return Request(method, target, headers, body)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read(reader)
            response = request if isinstance(request, Response) else await self.handler(request)
            head = [f"HTTP/1.1 {response.status} {'OK' if response.status < 400 else 'Error'}",
                    f"Content-Type: {response.content_type}",
                    f"Content-Length: {len(response.body)}", "Connection: close",
                    *(f"{k}: {v}" for k, v in response.headers.items())]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception:
            log.exception("HTTP request failed")
        finally:
            writer.close()
