"""Prometheus metrics of the RLS, read from its stats at each scrape: per configured
descriptor, envoyproxy/ratelimit's ``total_hits``, ``over_limit``, ``within_limit`` and
``shadow_mode`` (labels ``domain`` and ``descriptor``, its place in the config such as
``PATH_/`` or ``remote_address.PATH``), and the calls answered. Counters keep their names
(gauges that only go up, as the control plane's own ``pilot_*`` counters)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controlplane.ratelimit.service import Stats


class _StatsCollector(Collector):
    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats
        calls = GaugeMetricFamily("ratelimit_service_calls", "ShouldRateLimit calls, by answer.", labels=["answer"])
        calls.add_metric(["over_limit"], stats.over_limit)
        calls.add_metric(["no_limit"], stats.no_limit)
        calls.add_metric(["ok"], stats.requests - stats.over_limit)
        yield calls
        for name, help_text in (
            ("total_hits", "Hits counted against the descriptor's limit."),
            ("over_limit", "Hits refused: over the descriptor's limit."),
            ("within_limit", "Hits within the descriptor's limit."),
            ("shadow_mode", "Hits over the limit of a descriptor in shadow mode (not refused)."),
        ):
            family = GaugeMetricFamily(f"ratelimit_service_rate_limit_{name}", help_text,
                                         labels=["domain", "descriptor"])
            for (domain, key), counts in sorted(stats.by_descriptor.items()):
                family.add_metric([domain, key], getattr(counts, name))
            yield family


def registry_for(stats: Stats) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_StatsCollector(stats))
    return registry
