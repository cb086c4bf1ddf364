"""The server's own account of a window, read from its Prometheus exposition."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from benchmarks import server_metrics


def test_a_window_counts_pushes_and_means_over_every_label() -> None:
    registry = CollectorRegistry()
    push = Histogram("pilot_xds_push_time", "push", ["type"], registry=registry)
    debounce = Histogram("pilot_debounce_time", "debounce", registry=registry)
    push.labels("eds").observe(0.010)
    before = server_metrics.totals(generate_latest(registry).decode())
    push.labels("eds").observe(0.020)
    push.labels("full").observe(0.040)
    debounce.observe(0.100)
    after = server_metrics.totals(generate_latest(registry).decode())
    assert server_metrics.window(before, after) == {
        "pushes": 2, "push_ms_mean": 30.0, "debounce_ms_mean": 100.0, "queue_ms_mean": None,
    }
