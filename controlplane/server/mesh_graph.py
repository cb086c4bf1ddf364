"""The live mesh graph behind the monitoring port's ``/graph`` page (like Kiali's).

Nodes are workloads and services; an edge is a call, from a workload to a service and from
the service to the workload that served it, with its request rate, error percentage (5xx),
p99 latency and whether the server saw the caller's certificate (``mutual_tls``). The numbers
are Istio's metrics: read from a Prometheus when one is given (PromQL over one minute), else
scraped from the sidecars the control plane serves (their Envoy admin ``/stats/prometheus``),
the rates being the change since a scrape about ``RATE_WINDOW`` seconds old; a call seen
before but not in that window stays, idle.

A call is as the destination's sidecar reports it where it has one (the only one that knows
about mTLS), else as the caller's (``_prefer_destination``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from controlplane.model.text import clip
from controlplane.translate.istio_metrics.prometheus import istio_name

REQUESTS = "istio_requests_total"
DURATION_BUCKET = "istio_request_duration_milliseconds_bucket"
TCP_OPENED = "istio_tcp_connections_opened_total"
# What identifies a call: (source workload, its namespace, destination service, workload, its namespace).
CALL_LABELS = (
    "source_workload", "source_workload_namespace", "destination_service",
    "destination_workload", "destination_workload_namespace",
)  # fmt: skip
MAX_PROXIES = 200  # sidecars scraped per refresh; the page says when there are more
SCRAPE_TIMEOUT = 2.0
log = logging.getLogger("controlplane.mesh_graph")
MIN_REFRESH = 1.0  # seconds: pages polling faster share one scrape
# Rates compare the newest scrape with one about this old (Envoy flushes histograms every 5 s).
RATE_WINDOW = 15.0

Labels = Mapping[str, str]
Sample = tuple[str, dict[str, str], float]
CallKey = tuple[str, str, str, str, str]

def parse_prometheus(text: str) -> list[Sample]:
    """Istio's samples of a Prometheus text page, named as Prometheus stores them."""
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as exc:  # a page Prometheus itself would refuse
        log.warning("unreadable Prometheus page: %s", clip(str(exc), 200))
        return []
    return [
        (istio_name(sample.name), dict(sample.labels), float(sample.value))
        for family in families
        if "istio" in family.name
        for sample in family.samples
    ]


@dataclass(frozen=True, slots=True)
class Call:
    """One edge's numbers (per second, percent, milliseconds)."""

    source: str  # "namespace/workload"
    service: str
    destination: str  # "namespace/workload"
    protocol: str  # http, grpc or tcp
    rate: float
    error_percent: float
    p99_ms: float | None
    mtls: bool
    reporter: str


@dataclass
class _Counts:
    """Per call, cumulative: requests, 5xx, duration buckets (le -> count), mTLS seen."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    mtls: bool = False
    protocol: str = "http"


def _key(labels: Labels) -> CallKey:
    return tuple(labels.get(name, "unknown") for name in CALL_LABELS)  # type: ignore[return-value]


def _counts(samples: Iterable[Sample]) -> dict[tuple[str, CallKey], _Counts]:
    """(reporter, call) -> cumulative counts, from one scrape of every sidecar."""
    out: dict[tuple[str, CallKey], _Counts] = {}
    for name, labels, value in samples:
        if name not in (REQUESTS, DURATION_BUCKET, TCP_OPENED):
            continue
        entry = out.setdefault((labels.get("reporter", ""), _key(labels)), _Counts())
        if name == DURATION_BUCKET:
            le = math.inf if labels.get("le") == "+Inf" else float(labels.get("le", "inf"))
            entry.buckets[le] = entry.buckets.get(le, 0.0) + value
            continue
        entry.requests += value
        if name == TCP_OPENED:
            entry.protocol = "tcp"
        else:
            entry.protocol = labels.get("request_protocol", "http")
            if labels.get("response_code", "").startswith("5"):
                entry.errors += value
        entry.mtls = entry.mtls or labels.get("connection_security_policy") == "mutual_tls"
    return out


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets (le -> count)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return previous_bound


def calls_between(
    before: Iterable[Sample], after: Iterable[Sample], seconds: float
) -> list[Call]:
    """The calls made between two scrapes ``seconds`` apart."""
    old, new = _counts(before), _counts(after)
    per_reporter: dict[str, dict[CallKey, Call]] = {}
    for (reporter, key), now in new.items():
        was = old.get((reporter, key), _Counts())
        if seconds <= 0:
            continue
        # A call made before but not in this window stays, idle (rate 0), as Kiali shows it.
        requests = max(now.requests - was.requests, 0.0)
        errors = max(now.errors - was.errors, 0.0)
        buckets = {le: max(c - was.buckets.get(le, 0.0), 0.0) for le, c in now.buckets.items()}
        call = Call(
            source=f"{key[1]}/{key[0]}", service=key[2], destination=f"{key[4]}/{key[3]}",
            protocol=now.protocol, rate=requests / seconds,
            error_percent=100.0 * errors / requests if requests else 0.0,
            p99_ms=quantile(0.99, buckets), mtls=now.mtls, reporter=reporter,
        )  # fmt: skip
        per_reporter.setdefault(reporter, {})[key] = call
    return _prefer_destination(per_reporter)


def _prefer_destination(per_reporter: Mapping[str, Mapping[CallKey, Call]]) -> list[Call]:
    """The destination's view of each call, else the source's. A TCP server cannot name its
    caller (no peer headers): it defers to the callers' own reports of that service, keeping
    what only it knows, its workload and whether the connection was mutual TLS. (Over HTTP an
    unnamed caller is one without a sidecar.)"""
    destination = per_reporter.get("destination", {})
    source = per_reporter.get("source", {})
    unnamed = {k: c for k, c in destination.items() if k[0] == "unknown" and c.protocol == "tcp"}
    calls: dict[CallKey, Call] = {}
    covered: set[CallKey] = set()
    for key, call in source.items():
        for server_key, server in unnamed.items():
            if server_key[2] == key[2] and key[3] in (server_key[3], "unknown"):
                calls[key] = replace(call, mtls=server.mtls, destination=server.destination)
                covered.add(server_key)
                break
    for key, call in destination.items():
        if key not in covered:
            calls[key] = call
    for key, call in source.items():
        calls.setdefault(key, call)
    return sorted(calls.values(), key=lambda c: (c.source, c.service, c.destination))


def graph(calls: Iterable[Call]) -> dict[str, Any]:
    """Nodes and edges: workload -> service -> workload, numbers summed over the service."""
    nodes: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str], dict[str, Any]] = {}

    def node(node_id: str, kind: str) -> None:
        namespace, _, name = node_id.rpartition("/") if kind == "workload" else ("", "", node_id)
        nodes.setdefault(node_id, {"id": node_id, "kind": kind, "name": name or node_id, "namespace": namespace})

    def add(src: str, dst: str, call: Call) -> None:
        edge = edges.setdefault((src, dst), {"source": src, "target": dst, "rate": 0.0, "errors": 0.0,
                                            "p99_ms": None, "mtls": True, "protocol": call.protocol})  # fmt: skip
        edge["rate"] += call.rate
        edge["errors"] += call.rate * call.error_percent / 100.0
        if call.p99_ms is not None:
            edge["p99_ms"] = max(edge["p99_ms"] or 0.0, call.p99_ms)
        edge["mtls"] = edge["mtls"] and call.mtls

    for call in calls:
        node(call.source, "workload")
        node(call.service, "service")
        add(call.source, call.service, call)
        if not call.destination.endswith("/unknown"):
            node(call.destination, "workload")
            add(call.service, call.destination, call)
    out_edges = []
    for edge in edges.values():
        rate = edge.pop("errors")
        edge["error_percent"] = round(100.0 * rate / edge["rate"], 2) if edge["rate"] else 0.0
        edge["rate"] = round(edge["rate"], 3)
        if edge["p99_ms"] is not None:
            edge["p99_ms"] = round(edge["p99_ms"], 2)
        out_edges.append(edge)
    return {"nodes": sorted(nodes.values(), key=lambda n: n["id"]),
            "edges": sorted(out_edges, key=lambda e: (e["source"], e["target"]))}  # fmt: skip


# --- reading the numbers -----------------------------------------------------------------------


def _get(url: str, timeout: float = SCRAPE_TIMEOUT) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read(16 * 1024 * 1024)


class SidecarScraper:
    """Scrapes the sidecars' Istio metrics and keeps the previous scrape for rates."""

    def __init__(self) -> None:
        self._scrapes: list[tuple[float, list[Sample]]] = []  # oldest first, RATE_WINDOW long
        self._last: tuple[float, list[Call]] = (-MIN_REFRESH, [])
        self._lock = asyncio.Lock()

    async def calls(self, admin_addresses: Iterable[str]) -> list[Call]:
        async with self._lock:
            now = time.monotonic()
            if now - self._last[0] < MIN_REFRESH:
                return self._last[1]
            addresses = sorted(set(admin_addresses))[:MAX_PROXIES]
            pages = await asyncio.gather(*(self._scrape(a) for a in addresses))
            samples = [s for page in pages for s in page]
            calls: list[Call] = []
            # After a pause in polling, a scrape far older than the window is no baseline.
            self._scrapes = [(at, page) for at, page in self._scrapes if now - at < 3 * RATE_WINDOW]
            if self._scrapes:
                at, before = self._scrapes[0]
                calls = calls_between(before, samples, now - at)
            self._scrapes.append((now, samples))
            while len(self._scrapes) > 1 and now - self._scrapes[1][0] >= RATE_WINDOW:
                self._scrapes.pop(0)
            self._last = (now, calls)
            return calls

    async def _scrape(self, admin: str) -> list[Sample]:
        url = f"http://{admin}/stats/prometheus?filter=istiocustom"
        try:
            body = await asyncio.wait_for(asyncio.to_thread(_get, url), SCRAPE_TIMEOUT + 1)
        except (OSError, TimeoutError, ValueError):
            return []  # a proxy gone or slow: its calls are missing from this refresh
        return parse_prometheus(body.decode(errors="replace"))


_BY = ",".join(CALL_LABELS) + ",reporter"
PROMQL_RATE = f"sum by ({_BY},request_protocol,connection_security_policy) (rate(istio_requests_total[1m]))"
PROMQL_ERRORS = f'sum by ({_BY}) (rate(istio_requests_total{{response_code=~"5.."}}[1m]))'
PROMQL_P99 = f"histogram_quantile(0.99, sum by ({_BY},le) (rate(istio_request_duration_milliseconds_bucket[1m])))"
PROMQL_TCP = f"sum by ({_BY},connection_security_policy) (rate(istio_tcp_connections_opened_total[1m]))"


class PrometheusReader:
    """Istio's PromQL against a Prometheus (``--prometheus-url``)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._last: tuple[float, list[Call]] = (-MIN_REFRESH, [])
        self._lock = asyncio.Lock()

    def _query(self, promql: str) -> list[dict[str, Any]]:
        body = _get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=5.0)
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise ValueError(f"Prometheus refused {promql!r}: {answer.get('error')}")
        return list(answer["data"]["result"])

    def calls_sync(self) -> list[Call]:
        rates: dict[tuple[str, CallKey], dict[str, Any]] = {}
        for promql, protocol in ((PROMQL_RATE, None), (PROMQL_TCP, "tcp")):
            for r in self._query(promql):
                labels, value = r["metric"], float(r["value"][1])
                if value <= 0 or math.isnan(value):
                    continue
                entry = rates.setdefault((labels.get("reporter", ""), _key(labels)), {
                    "rate": 0.0, "mtls": False, "protocol": protocol or labels.get("request_protocol", "http")})
                entry["rate"] += value
                entry["mtls"] = entry["mtls"] or labels.get("connection_security_policy") == "mutual_tls"
        errors = {(r["metric"].get("reporter", ""), _key(r["metric"])): float(r["value"][1])
                  for r in self._query(PROMQL_ERRORS)}  # fmt: skip
        p99 = {(r["metric"].get("reporter", ""), _key(r["metric"])): float(r["value"][1])
               for r in self._query(PROMQL_P99)}  # fmt: skip
        per_reporter: dict[str, dict[CallKey, Call]] = {}
        for (reporter, key), entry in rates.items():
            latency = p99.get((reporter, key))
            per_reporter.setdefault(reporter, {})[key] = Call(
                source=f"{key[1]}/{key[0]}", service=key[2], destination=f"{key[4]}/{key[3]}",
                protocol=entry["protocol"], rate=entry["rate"],
                error_percent=100.0 * errors.get((reporter, key), 0.0) / entry["rate"],
                p99_ms=None if latency is None or math.isnan(latency) else latency,
                mtls=entry["mtls"], reporter=reporter,
            )  # fmt: skip
        return _prefer_destination(per_reporter)

    async def calls(self) -> list[Call]:
        """Pages polling at once, or faster than MIN_REFRESH, share one set of queries."""
        async with self._lock:
            if time.monotonic() - self._last[0] >= MIN_REFRESH:
                self._last = (time.monotonic(), await asyncio.to_thread(self.calls_sync))
            return self._last[1]


def call_dicts(calls: Iterable[Call]) -> list[dict[str, Any]]:
    return [asdict(c) for c in calls]
