"""The mesh graph on the monitoring port: the page (``web/``: plain HTML, JS and CSS shipped in
the package, no build step, no CDN), its data, and Prometheus service discovery of the sidecars.

    /graph                  the page; it polls /debug/graph every 2 s
    /debug/graph            calls (mesh_graph.py) and every proxy's sync state per xDS type
    /debug/prometheus_sd    http_sd_configs targets: each served sidecar's Envoy admin, where
                            /stats/prometheus is (``controlplane prometheus-config`` uses it)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import quote

from controlplane.model.node import split_pod_name
from controlplane.server.mesh_graph import (
    MAX_PROXIES,
    Call,
    PrometheusReader,
    SidecarScraper,
    call_dicts,
    graph,
)

log = logging.getLogger("controlplane.graph")

Response = tuple[int, str, bytes]
Query = dict[str, list[str]]
_ASSETS = {"mesh.html": "text/html; charset=utf-8", "mesh.js": "text/javascript", "mesh.css": "text/css"}


def _asset(name: str) -> bytes:
    return resources.files("controlplane.server").joinpath("web", name).read_bytes()


def _static(name: str) -> Callable[[Query], Response]:
    def serve(_query: Query) -> Response:
        return 200, _ASSETS[name], _asset(name)

    return serve


def _json(body: Any, status: int = 200) -> Response:
    return status, "application/json", json.dumps(body, sort_keys=True, default=str).encode()


class MeshGraphPages:
    def __init__(self, syncz: Callable[[], list[dict[str, Any]]], prometheus_url: str | None) -> None:
        self._syncz = syncz
        self._prometheus = PrometheusReader(prometheus_url) if prometheus_url else None
        self._scraper = SidecarScraper()

    def routes(self) -> dict[str, Callable[[Query], Response | Awaitable[Response]]]:
        out: dict[str, Callable[[Query], Response | Awaitable[Response]]] = {
            "/graph": _static("mesh.html"),
            "/debug/graph": self._graph,
            "/debug/prometheus_sd": self._service_discovery,
        }
        for name in ("mesh.js", "mesh.css"):
            out[f"/graph/{name}"] = _static(name)
        return out

    def _proxies(self) -> list[dict[str, Any]]:
        proxies = []
        for stream in self._syncz():
            name = str(stream.get("proxy", ""))
            proxies.append({
                "proxy": name,
                "spiffe_id": stream.get("spiffe_id"),
                "admin_address": stream.get("admin_address"),
                "types": {t.rsplit(".", 1)[-1]: v.get("state") for t, v in (stream.get("types") or {}).items()},
                "config_dump": f"/debug/config_dump?proxyID={quote(name)}",
            })  # fmt: skip
        return proxies

    async def _graph(self, _query: Query) -> Response:
        proxies = self._proxies()
        calls: list[Call] = []
        error = None
        try:
            if self._prometheus is not None:
                calls = await self._prometheus.calls()
            else:
                calls = await self._scraper.calls(p["admin_address"] for p in proxies if p["admin_address"])
        except (OSError, ValueError, KeyError) as exc:
            error = f"reading metrics: {exc}"
            log.warning("mesh graph: %s", error)
        return _json({
            "source": self._prometheus.url if self._prometheus is not None else "sidecars",
            "graph": graph(calls),
            "calls": call_dicts(calls),
            "proxies": proxies,
            "truncated": len(proxies) > MAX_PROXIES,
            "error": error,
        })  # fmt: skip

    def _service_discovery(self, _query: Query) -> Response:
        targets = []
        for p in self._proxies():
            if not p["admin_address"]:
                continue
            pod, namespace = split_pod_name(p["proxy"])
            targets.append({"targets": [p["admin_address"]], "labels": {"pod": pod, "namespace": namespace}})
        return _json(targets)
