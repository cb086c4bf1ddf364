"""The agent's HTTP ports, as pilot-agent's: readiness on 15021 (``/healthz/ready``: Envoy's
admin ``/ready`` says LIVE and it holds its listeners) and Prometheus stats on 15020
(``/stats/prometheus``: Envoy's stats merged with the app's own, when it has any)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from controlplane.httpd import HttpServer, Request, Response

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
MAX_SCRAPE_BYTES = 16 * 1024 * 1024


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(MAX_SCRAPE_BYTES)
    except urllib.error.HTTPError as error:
        return error.code, error.read(4096)
    except (OSError, ValueError):
        return 0, b""


class StatusServer:
    def __init__(self, admin_port: int, app_metrics_url: str | None = None) -> None:
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.app_metrics_url = app_metrics_url
        self._servers = [HttpServer(self._handle, max_body_bytes=0) for _ in range(2)]

    async def start(self, host: str, ready_port: int, status_port: int) -> tuple[int, int]:
        ready = await self._servers[0].start(host, ready_port)
        status = await self._servers[1].start(host, status_port)
        return ready, status

    async def stop(self) -> None:
        for server in self._servers:
            await server.stop()

    async def ready(self) -> bool:
        status, body = await asyncio.to_thread(_get, f"{self.admin}/ready")
        return status == 200 and body.strip() == b"LIVE"

    async def _handle(self, request: Request) -> Response:
        path = request.path.split("?")[0]
        if request.method != "GET":
            return Response(405, b"GET only\n")
        if path in ("/healthz/ready", "/ready"):
            ok = await self.ready()
            return Response(200 if ok else 503, b"LIVE\n" if ok else b"Envoy not ready\n")
        if path == "/stats/prometheus":
            return await self._stats()
        return Response(404, b"/healthz/ready, /stats/prometheus\n")

    async def _stats(self) -> Response:
        envoy_status, envoy = await asyncio.to_thread(_get, f"{self.admin}/stats/prometheus")
        if envoy_status != 200:
            return Response(503, b"Envoy stats unavailable\n")
        body = envoy
        if self.app_metrics_url:
            app_status, app = await asyncio.to_thread(_get, self.app_metrics_url)
            if app_status == 200:  # the app's metrics are best effort, as pilot-agent's
                body = envoy.rstrip(b"\n") + b"\n" + app
        return Response(200, body, PROMETHEUS_TEXT)
