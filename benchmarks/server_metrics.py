"""The control plane's own account of a scenario, from its Prometheus metrics (Istio's names),
read before and after the window: how many pushes it made, how long changes waited in the
debounce, how long a push took and how long proxies waited in the push queue. With the
convergence times it tells where the time went (watch and debounce, push, or sending)."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# sample name -> key; labelled series are summed.
SERIES = {
    "pilot_xds_push_time_count": "pushes",
    "pilot_xds_push_time_sum": "push_seconds",
    "pilot_debounce_time_count": "debounced",
    "pilot_debounce_time_sum": "debounce_seconds",
    "pilot_proxy_queue_time_count": "queued",
    "pilot_proxy_queue_time_sum": "queue_seconds",
}


def totals(exposition: str) -> dict[str, float]:
    out = dict.fromkeys(SERIES.values(), 0.0)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            key = SERIES.get(sample.name)
            if key is not None:
                out[key] += sample.value
    return out


def window(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """What happened between two readings: counts, and mean times in ms."""
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in SERIES.values()}

    def mean_ms(total: str, count: str) -> float | None:
        return round(delta[total] / delta[count] * 1000, 1) if delta[count] else None

    return {
        "pushes": int(delta["pushes"]),
        "push_ms_mean": mean_ms("push_seconds", "pushes"),
        "debounce_ms_mean": mean_ms("debounce_seconds", "debounced"),
        "queue_ms_mean": mean_ms("queue_seconds", "queued"),
    }
