"""benchmarks/first_translation.py at a tiny scale: after the warm-up, each new group's first
translation takes the shared outbound units and builds only its own."""

from __future__ import annotations

from benchmarks import first_translation


async def test_groups_after_the_warm_up_build_a_small_part_of_what_it_built() -> None:
    row = await first_translation.measure(services=20, groups=2)
    assert row["warm-up units built"] > 0
    assert 0 < row["units built per group (p50)"] * 4 < row["warm-up units built"], row
    assert row["first translation CPU ms (max)"] > 0
