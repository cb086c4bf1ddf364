"""benchmarks/stream_cost.py at a tiny scale: every stream is sent every change and ACKs it
(its rounds wait for that), in SotW and delta; with a new cluster per change, each stream is
sent CDS, the new cluster's EDS once its client asked for it, and RDS."""

from __future__ import annotations

import pytest

from benchmarks import stream_cost


@pytest.mark.parametrize("delta", [False, True])
async def test_every_stream_gets_every_change(delta: bool) -> None:
    row = await stream_cost.measure(streams=3, clusters=20, changes=2, delta=delta, throttle=1)
    assert row["responses"] == 6
    assert row["CPU us per response"] > 0 and row["clients' part us"] > 0


@pytest.mark.parametrize("delta", [False, True])
async def test_every_stream_gets_a_new_cluster_s_three_responses(delta: bool) -> None:
    row = await stream_cost.measure(streams=3, clusters=20, changes=2, delta=delta, throttle=1, new_clusters=True)
    assert row["responses"] == 18
    assert row["server us per response"] > 0 and row["first responses CPU us per stream"] > 0
