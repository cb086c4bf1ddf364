"""One target, one plan, one set of client processes: the scenarios run in order on it.

Convergence of a change, per proxy, is the time from the moment the change was made to the ACK
of the response that first satisfied all of the change's probes; a scenario reports the
percentiles over every (proxy, change) pair and the "last proxy" time of each change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from benchmarks import proxies, readiness, server_metrics
from benchmarks.clients import ClientConfig, ClientPool
from benchmarks.plan import Plan, StateChange
from benchmarks.targets import Target


@dataclass(frozen=True)
class SessionConfig:
    proxies: int
    processes: int = 2
    mode: str = "sotw"
    churn_rate: float = 5.0  # endpoint changes per second
    timeout: float = 120.0  # per scenario, for convergence


def latency_summary(samples_ms: list[float]) -> dict[str, float | None]:
    if not samples_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(samples_ms)
    return {
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "max": round(float(a.max()), 2),
        "mean": round(float(a.mean()), 2),
    }


class Session:
    def __init__(self, target: Target, plan: Plan, config: SessionConfig,
                 progress: Callable[[str], None] = lambda _: None) -> None:
        self.target = target
        self.plan = plan
        self.config = config
        self.progress = progress
        self.pool: ClientPool | None = None
        self._bytes_mark = 0
        self._server_mark: dict[str, float] = {}

    async def __aenter__(self) -> Self:
        plan = self.plan
        self.progress(f"{self.target.name}: starting")
        await self.target.start(plan.initial, plan.initial_expected)
        last = plan.initial.cluster_name(len(plan.initial.services) - 1)
        self.ready_seconds = await readiness.wait_serving(self.target.address, last)
        self.pool = ClientPool(ClientConfig(
            target=self.target.address, proxies=self.config.proxies, groups=plan.groups,
            namespaces=plan.spec.namespaces, mode=self.config.mode,
            processes=self.config.processes,
        ))
        await self.pool.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.pool is not None:
                await self.pool.stop()
        finally:
            await self.target.stop()

    # --- measurement helpers --------------------------------------------------------------

    def _base(self, scenario: str) -> dict[str, Any]:
        return {
            "scenario": scenario, "target": self.target.name, "mode": self.config.mode,
            "proxies": self.config.proxies, "services": len(self.plan.initial.services),
            "endpoints_per_service": self.plan.spec.endpoints, "groups": self.plan.groups,
        }

    async def _bytes(self) -> tuple[int, list[dict[str, Any]]]:
        assert self.pool is not None
        reports = await self.pool.report()
        return sum(r["bytes"] for r in reports), reports

    async def _window_start(self) -> None:
        self._server_mark = await self.target.server_metrics()
        self._bytes_mark, _ = await self._bytes()
        assert self.target.monitor is not None and self.pool is not None
        self._client_cpu_mark = self.pool.cpu_seconds()
        self.target.monitor.mark()

    async def _window_end(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        assert self.target.monitor is not None and self.pool is not None
        result.update(self.target.monitor.window())
        result["client_cpu_seconds"] = round(self.pool.cpu_seconds() - self._client_cpu_mark, 2)
        total, reports = await self._bytes()
        result["bytes_sent"] = total - self._bytes_mark
        result["reconnects"] = sum(r["reconnects"] for r in reports)
        server = await self.target.server_metrics()
        if server and self._server_mark:
            result["server"] = server_metrics.window(self._server_mark, server)
        return reports

    # --- scenarios ------------------------------------------------------------------------

    async def cold_start(self) -> dict[str, Any]:
        """Every proxy connects at once; converged = CDS, EDS for every EDS cluster, LDS, and
        RDS for every route name received and ACKed, with the translator's counts."""
        assert self.pool is not None and self.target.monitor is not None
        self.progress(f"{self.target.name}: cold start, {self.config.proxies} proxies")
        result = self._base("cold_start")
        await self._window_start()
        rss_before = self.target.monitor.rss()
        t0 = await self.pool.connect()
        done = await self.pool.wait_synced(self.config.timeout)
        await asyncio.sleep(0.2)  # let the server settle before reading its memory
        rss_after = self.target.monitor.rss()
        await self._window_end(result)
        latencies, mismatched = [], 0
        for index, (_, acked, counts) in self.pool.synced.items():
            latencies.append((acked - t0) * 1000)
            group = proxies.identity(index, self.plan.groups, self.plan.spec.namespaces).cluster
            if counts != self.plan.initial_expected.counts(group):
                mismatched += 1
        result.update({
            "converged": len(self.pool.synced), "expected": self.config.proxies,
            "mismatched": mismatched, "timed_out": not done,
            "convergence_ms": latency_summary(latencies),
            "rss_per_proxy_kb": round((rss_after - rss_before) / 1024 / self.config.proxies, 1),
            "expected_counts": self.plan.initial_expected.counts(
                proxies.identity(0, self.plan.groups, self.plan.spec.namespaces).cluster),
        })
        result["complete"] = result["converged"] == result["expected"] and mismatched == 0
        return result

    async def endpoint_churn(self, changes: int | None = None) -> dict[str, Any]:
        """Endpoints added and removed at a steady rate; each change is one fresh address added
        to a service and one original address removed."""
        assert self.pool is not None
        steps = self.plan.churn[:changes] if changes is not None else self.plan.churn
        self.progress(f"{self.target.name}: endpoint churn, {len(steps)} changes "
                      f"at {self.config.churn_rate}/s")
        result = self._base("endpoint_churn")
        prepared = [self.target.prepare_endpoints(step.assignments) for step in steps]
        await self._window_start()
        moments: dict[str, float] = {}
        start = time.monotonic()
        for k, step in enumerate(steps):
            await self.pool.register(step.change.id, list(step.change.probes))
            moments[step.change.id] = await self.target.apply_endpoints(step.state, step.index, prepared[k])
            delay = start + (k + 1) / self.config.churn_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        result.update(await self._collect([(s.change.id, [p.id for p in s.change.probes]) for s in steps],
                                          moments))
        result["rate_per_second"] = self.config.churn_rate
        return result

    async def state_change(self, scenario: str, change: StateChange | None) -> dict[str, Any]:
        assert self.pool is not None
        result = self._base(scenario)
        if change is None:
            result.update({"complete": False, "skipped": "not in plan"})
            return result
        self.progress(f"{self.target.name}: {scenario}")
        await self._window_start()
        await self.pool.register(change.change.id, list(change.change.probes))
        moment = await self.target.apply_state(change.state, change.changed, change.expected)
        result.update(await self._collect([(change.change.id, [p.id for p in change.change.probes])],
                                          {change.change.id: moment}))
        return result

    async def _collect(self, changes: list[tuple[str, list[str]]],
                       moments: dict[str, float]) -> dict[str, Any]:
        """Wait for every proxy to satisfy every change, then summarise (and forget probes)."""
        assert self.pool is not None
        all_probes = [p for _, ids in changes for p in ids]
        deadline = time.monotonic() + self.config.timeout
        ok = True
        for _, ids in changes:
            ok = await self.pool.wait_converged(ids, max(0.0, deadline - time.monotonic())) and ok
        partial: dict[str, Any] = {}
        await self._window_end(partial)
        latencies, last, converged_pairs = [], [], 0
        for change_id, ids in changes:
            reached = self.pool.converged(ids)
            converged_pairs += len(reached)
            times = [(acked - moments[change_id]) * 1000 for _, acked in reached.values()]
            latencies.extend(times)
            if len(reached) == self.config.proxies:
                last.append(round(max(times), 2))
        await self.pool.forget(all_probes)
        expected_pairs = len(changes) * self.config.proxies
        return {
            **partial,
            "changes": len(changes), "converged": converged_pairs, "expected": expected_pairs,
            "lost_updates": expected_pairs - converged_pairs, "timed_out": not ok,
            "convergence_ms": latency_summary(latencies),
            "last_proxy_ms": latency_summary(last),
            "complete": converged_pairs == expected_pairs,
        }
