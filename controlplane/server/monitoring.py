"""The monitoring port (15014): Prometheus ``/metrics``, readiness and JSON debug endpoints.

A few GET endpoints for operators do not earn a web framework; the project's small asyncio
HTTP/1.1 server (``controlplane/httpd.py``: bounded headers and body) serves them. Nothing
here ever shows key material: secrets are redacted as Envoy's own admin redacts them, input
Secrets are listed by name only.

    /metrics                      Prometheus text (pilot_*, citadel_*, process_*)
    /healthz/ready                200 once the first full translation is done, else 503
    /debug/syncz                  every xDS stream: node, identity, per type sent/ACK/NACK
    /debug/config_dump?proxyID=   what we would send that proxy, as Envoy's /config_dump
    /debug/configz                the input store: resources by kind, validation errors
    /debug/push_status            recent pushes, proxy groups, xDS counters, recent NACKs
    /graph                        the live mesh graph page (mesh_graph.py, web/)
    /debug/graph                  its data: calls between workloads and services, proxies' sync
    /debug/prometheus_sd          Prometheus HTTP service discovery: every served sidecar
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controlplane import httpd
from controlplane.model.node import proxy_name, split_pod_name
from controlplane.server.config_dump import config_dump_dict
from controlplane.server.graph_pages import MeshGraphPages

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from controlplane.server.observer import Observer
    from controlplane.server.push import Pusher
    from controlplane.store import Snapshot
    from controlplane.xds import SnapshotCache, XdsServer

log = logging.getLogger("controlplane.monitoring")

Response = tuple[int, str, bytes]
Query = dict[str, list[str]]

# Per-type sync states, as istioctl proxy-status names them.
SYNCED = "SYNCED"
NOT_SENT = "NOT SENT"
STALE = "STALE"  # sent, no ACK yet
NACK = "NACK"  # the newest response of this type was rejected
IGNORED = "IGNORED"  # the proxy never asked for this type

DEBUG_ENDPOINTS: dict[str, str] = {
    "/metrics": "Prometheus metrics",
    "/healthz/ready": "readiness: 200 after the first full translation",
    "/debug/syncz": "xDS sync state of every connected proxy",
    "/debug/config_dump": "?proxyID=NODE_ID_OR_POD.NAMESPACE: what that proxy is sent",
    "/debug/configz": "the input store",
    "/debug/push_status": "recent pushes, proxy groups, xDS counters, recent NACKs",
    "/graph": "the live mesh graph (HTML)",
    "/debug/graph": "the mesh graph's data: calls, rates, errors, p99, mTLS, proxies' sync",
    "/debug/prometheus_sd": "Prometheus http_sd_configs targets: every served sidecar's stats",
}


def _json(status: int, body: Any) -> Response:
    return (
        status,
        "application/json",
        json.dumps(body, indent=1, sort_keys=True, default=str).encode(),
    )


def sync_state(type_status: dict[str, Any] | None) -> str:
    """One type of one stream (an entry of ``XdsServer.streams_status()[i]["types"]``)."""
    if type_status is None:
        return IGNORED
    if type_status.get("version_sent") is None:
        return NOT_SENT
    if type_status.get("pending_ack"):
        return STALE
    nack = type_status.get("last_nack")
    sent_at = type_status.get("sent_at") or 0.0
    if nack and nack.get("at", 0.0) >= sent_at:
        return NACK
    return SYNCED


def matches_proxy(query: str, node_id: str) -> bool:
    """A proxy is named by its node id, ``pod.namespace`` (``proxy_name``) or the pod name
    alone (pod names may hold dots: the namespace follows the last one)."""
    name = proxy_name(node_id)
    return query in (node_id, name) or split_pod_name(name)[0] == query


def admin_address(info: Any) -> str | None:
    """Where the proxy's Envoy admin listens, if its node says: Istio's node metadata
    ``PROXY_CONFIG.proxyAdminPort``, on ``proxyAdminHost`` where our bootstrap says where it
    binds, else on the address the proxy connects from (Istio binds admin to localhost:
    reachable from the proxy's own host)."""
    if info is None:
        return None
    proxy_config = info.node.metadata.fields.get("PROXY_CONFIG")
    if proxy_config is None or proxy_config.WhichOneof("kind") != "struct_value":
        return None
    port = proxy_config.struct_value.fields.get("proxyAdminPort")
    if port is None or port.WhichOneof("kind") not in ("number_value", "string_value"):
        return None
    port_text = (
        str(int(port.number_value))
        if port.WhichOneof("kind") == "number_value"
        else port.string_value
    )
    bound = proxy_config.struct_value.fields.get("proxyAdminHost")
    bound_host = bound.string_value if bound is not None and bound.WhichOneof("kind") == "string_value" else ""
    if bound_host in ("", "0.0.0.0", "::"):  # every address: the one it connects from
        bound_host = ""
    host = bound_host or _peer_host(str(info.peer)) or "127.0.0.1"
    return f"[{host}]:{port_text}" if ":" in host else f"{host}:{port_text}"


def _peer_host(peer: str) -> str | None:
    """gRPC peer ``ipv4:127.0.0.1:5555`` / ``ipv6:[::1]:5555`` → the host part."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return None


@dataclass(frozen=True)
class MonitoringInputs:
    """What the monitoring port reads, handed over by the runtime (which it never sees)."""

    registry: CollectorRegistry
    refresh_metrics: Callable[[], None]  # bring gauges up to date before a scrape
    ready: asyncio.Event  # set after the first full translation
    snapshot: Callable[[], Snapshot]  # the newest input snapshot
    config_errors: Callable[[], list[str]]  # input that failed validation, one line each
    observer: Observer
    xds_server: XdsServer
    cache: SnapshotCache
    pusher: Pusher
    prometheus_url: str | None = None  # the mesh graph reads this Prometheus, else the sidecars


class MonitoringServer:
    def __init__(self, inputs: MonitoringInputs) -> None:
        self._rt = inputs
        self._server = httpd.HttpServer(self._serve, max_body_bytes=0)  # GET only: no body
        self._routes: dict[str, Callable[[Query], Response | Awaitable[Response]]] = {
            "/metrics": self._metrics,
            "/healthz/ready": self._ready,
            "/debug": self._index,
            "/debug/syncz": self._syncz,
            "/debug/config_dump": self._config_dump,
            "/debug/configz": self._configz,
            "/debug/push_status": self._push_status,
        }
        self._graph = MeshGraphPages(self.syncz, inputs.prometheus_url)
        self._routes.update(self._graph.routes())

    async def start(self, host: str, port: int) -> int:
        return await self._server.start(host, port)

    async def stop(self) -> None:
        await self._server.stop()

    async def _serve(self, request: httpd.Request) -> httpd.Response:
        url = urlsplit(request.path)
        handler = self._routes.get(url.path.rstrip("/") or "/debug")
        if request.method != "GET":
            return httpd.Response(405, b"only GET\n", "text/plain")
        if handler is None:
            return httpd.Response(404, ("endpoints: " + " ".join(self._routes) + "\n").encode(), "text/plain")
        result = handler(parse_qs(url.query))
        status, content_type, body = await result if inspect.isawaitable(result) else result
        return httpd.Response(status, body, content_type)

    # --- endpoints ----------------------------------------------------------------------------

    def _metrics(self, _query: Query) -> Response:
        self._rt.refresh_metrics()
        self._rt.observer.refresh(self._rt.snapshot())
        return 200, CONTENT_TYPE_LATEST, generate_latest(self._rt.registry)

    def _ready(self, _query: Query) -> Response:
        # Ready only after the first full translation.
        if self._rt.ready.is_set():
            return 200, "text/plain", b"ready\n"
        return 503, "text/plain", b"not ready: first translation pending\n"

    def _index(self, _query: Query) -> Response:
        return _json(200, DEBUG_ENDPOINTS)

    def _syncz(self, _query: Query) -> Response:
        return _json(200, self.syncz())

    def syncz(self) -> list[dict[str, Any]]:
        """The xDS server's stream status, with each type's state and the proven SPIFFE ID."""
        out = []
        for status in self._rt.xds_server.streams_status():
            entry: dict[str, Any] = dict(status)
            node_id = str(entry.get("node_id", ""))
            entry["proxy"] = proxy_name(node_id)
            info = self._rt.observer.stream(int(entry.get("stream_id", 0)))
            identity = getattr(info, "identity", None)
            entry["spiffe_id"] = getattr(identity, "spiffe_id", None)
            entry["admin_address"] = admin_address(info)
            types = entry.get("types") or {}
            entry["types"] = {name: dict(t, state=sync_state(t)) for name, t in types.items()}
            out.append(entry)
        return sorted(out, key=lambda e: (e["proxy"], e.get("stream_id", 0)))

    def _config_dump(self, query: Query) -> Response:
        wanted = (query.get("proxyID") or [""])[0]
        if not wanted:
            return _json(400, {"error": "give ?proxyID=<node id or pod.namespace>"})
        streams = [
            s
            for s in self._rt.xds_server.streams_status()
            if matches_proxy(wanted, str(s.get("node_id", "")))
        ]
        if not streams:
            return _json(404, {"error": f"no connected proxy {wanted!r}"})
        node_ids = sorted({str(s.get("node_id")) for s in streams})
        if len(node_ids) > 1:
            return _json(400, {"error": f"{wanted!r} names several proxies", "proxies": node_ids})
        stream: dict[str, Any] = dict(streams[0])
        group = str(stream.get("group") or "")
        info = self._rt.observer.stream(int(stream.get("stream_id", 0)))
        identity = getattr(info, "identity", None)
        cache = self._rt.cache
        return _json(200, config_dump_dict(lambda type_url: cache.view(group, identity, type_url)))

    def _configz(self, query: Query) -> Response:
        """Input resources by key (never their content: input Secrets hold keys)."""
        snapshot = self._rt.snapshot()
        kind = (query.get("kind") or [""])[0]
        keys = [key for key in snapshot if not kind or key.kind == kind]
        counts: dict[str, int] = {}
        for key in snapshot:
            counts[key.kind] = counts.get(key.kind, 0) + 1
        return _json(
            200,
            {
                "version": snapshot.version,
                "counts": counts,
                "resources": [str(key) for key in keys],
                "errors": self._rt.config_errors(),
            },
        )

    def _push_status(self, _query: Query) -> Response:
        now = time.time()
        pushes = [
            dict(asdict(p), ago_seconds=round(now - p.at, 3))
            for p in self._rt.observer.recent_pushes()
        ]
        nacks = [
            {
                "node_id": n.node_id,
                "proxy": proxy_name(n.node_id),
                "type_url": n.type_url,
                "version": n.rejected_version,
                "error": n.error,
                "at": n.at,
            }
            for n in self._rt.xds_server.recent_nacks()[-20:]
        ]
        return _json(
            200,
            {
                "pushes": self._rt.pusher.pushes,
                "recent_pushes": pushes,
                "proxy_groups": sorted(self._rt.pusher.groups()),
                "counters": self._rt.xds_server.counters.snapshot(),
                "recent_nacks": nacks,
            },
        )
