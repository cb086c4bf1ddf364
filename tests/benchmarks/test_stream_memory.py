"""The memory-per-proxy benchmark on a tiny mesh: both levels of proxies sync on each target,
and the traced run attributes allocations to source lines. Never asserts on the figures."""

from __future__ import annotations

from benchmarks import mesh
from benchmarks import plan as plans
from benchmarks.stream_memory import measure, traced
from benchmarks.targets import ControlPlaneTarget, FloorTarget

SPEC = mesh.MeshSpec(services=10, endpoints=2, virtual_services=2, destination_rules=2,
                     namespaces=2)


async def test_both_targets_report_rss_at_both_levels() -> None:
    plan = plans.build(SPEC, 2, 0, full=False)
    for target in (FloorTarget(), ControlPlaneTarget()):
        row = await measure(target, plan, (2, 6), "sotw", 1, 60)
        assert row["target"] == target.name and row["proxies"] == [2, 6]
        assert len(row["rss_mb"]) == 2 and all(r > 0 for r in row["rss_mb"])
        assert isinstance(row["kb_per_proxy"], float)


async def test_the_traced_run_names_the_lines_that_allocate() -> None:
    plan = plans.build(SPEC, 2, 0, full=False)
    rows = await traced(plan, (2, 6), "delta", 1, 60, top=5)
    assert 0 < len(rows) <= 5
    assert all(":" in where and isinstance(kb, float) for where, kb, _ in rows)
