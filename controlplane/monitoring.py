"""The monitoring port (15014): Prometheus ``/metrics``, readiness and JSON debug endpoints.

A few GET endpoints for operators do not earn a web framework; this is plain asyncio
HTTP/1.1, one request per connection. Nothing here ever shows key material: secrets
appear by name and version only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from google.protobuf.json_format import MessageToDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controlplane.xds import types

if TYPE_CHECKING:
    from controlplane.runtime import ControlPlane

log = logging.getLogger("controlplane.monitoring")

Response = tuple[int, str, bytes]


def _json(status: int, body: Any) -> Response:
    return status, "application/json", json.dumps(body, indent=1, sort_keys=True, default=str).encode()


class MonitoringServer:
    def __init__(self, runtime: ControlPlane) -> None:
        self._rt = runtime
        self._server: asyncio.base_events.Server | None = None
        self._routes: dict[str, Callable[[dict[str, list[str]]], Response]] = {
            "/metrics": self._metrics,
            "/healthz/ready": self._ready,
            "/debug/syncz": self._syncz,
            "/debug/config_dump": self._config_dump,
            "/debug/configz": self._configz,
            "/debug/push_status": self._push_status,
        }

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing here needs them
            method, target, _ = request_line.decode("latin-1").split(" ", 2)
            url = urlsplit(target)
            handler = self._routes.get(url.path)
            if method != "GET":
                status, ctype, body = 405, "text/plain", b"only GET\n"
            elif handler is None:
                status, ctype, body = 404, "text/plain", ("endpoints: " + " ".join(self._routes) + "\n").encode()
            else:
                status, ctype, body = handler(parse_qs(url.query))
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (ValueError, asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("monitoring request failed")
        finally:
            writer.close()

    # --- endpoints ----------------------------------------------------------------------------

    def _metrics(self, _query: dict[str, list[str]]) -> Response:
        self._rt.refresh_metrics()
        return 200, CONTENT_TYPE_LATEST, generate_latest(self._rt.metrics.registry)

    def _ready(self, _query: dict[str, list[str]]) -> Response:
        # Ready only after the first full translation.
        if self._rt.ready.is_set():
            return 200, "text/plain", b"ready\n"
        return 503, "text/plain", b"not ready: first translation pending\n"

    def _syncz(self, _query: dict[str, list[str]]) -> Response:
        return _json(200, self._rt.xds_server.streams_status())

    def _config_dump(self, query: dict[str, list[str]]) -> Response:
        proxy_id = (query.get("proxyID") or [""])[0]
        streams = [s for s in self._rt.xds_server.streams_status() if s.get("node_id") == proxy_id]
        if not streams:
            return _json(404, {"error": f"no connected proxy {proxy_id!r}"})
        group = str(streams[0].get("group", ""))
        dump: dict[str, Any] = {}
        for type_url in (types.CLUSTER, types.ENDPOINT, types.LISTENER, types.ROUTE):
            resources = self._rt.cache.resources(group, type_url)
            dump[types.short_name(type_url)] = [
                MessageToDict(resources.by_name[name].message()) for name in sorted(resources.by_name)
            ]
        # Secrets only by name and version, as the stream status reports them: never key bytes.
        return _json(200, {"proxyID": proxy_id, "group": group, "config": dump})

    def _configz(self, _query: dict[str, list[str]]) -> Response:
        snapshot = self._rt.store.snapshot
        return _json(200, {
            "version": snapshot.version,
            "resources": [str(key) for key in sorted(snapshot)],
            "errors": [str(e) for folder in self._rt.folders for e in folder.errors],
        })

    def _push_status(self, _query: dict[str, list[str]]) -> Response:
        return _json(200, {
            "pushes": self._rt.pusher.pushes,
            "proxy_groups": sorted(self._rt.pusher.groups()),
            "counters": self._rt.xds_server.counters.snapshot(),
        })
