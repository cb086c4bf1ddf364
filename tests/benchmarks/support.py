"""What the benchmark tests share: the main scenarios, and what a converged result holds."""

from __future__ import annotations

MAIN = ("cold_start", "endpoint_churn", "routing_change", "new_service")


def assert_converged(result: dict) -> None:
    assert result["complete"], result
    assert result["converged"] == result["expected"] > 0
    assert result.get("lost_updates", 0) == 0 and result.get("mismatched", 0) == 0
    assert result["reconnects"] == 0
    assert result["bytes_sent"] > 0
    assert all(result["convergence_ms"][k] is not None for k in ("p50", "p95", "p99", "max"))
