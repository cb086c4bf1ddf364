"""benchmarks/stream_cost.py at a tiny scale: every stream is sent every change and ACKs it
(its rounds wait for that), in SotW and delta."""

from __future__ import annotations

import pytest

from benchmarks import stream_cost


@pytest.mark.parametrize("delta", [False, True])
async def test_every_stream_gets_every_change(delta: bool) -> None:
    row = await stream_cost.measure(streams=3, clusters=20, changes=2, delta=delta, throttle=1)
    assert row["responses"] == 6
    assert row["CPU us per response"] > 0 and row["clients' part us"] > 0
