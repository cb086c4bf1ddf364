"""benchmarks/ratelimit.py at a tiny scale: it runs end to end and reports every figure (no
timing is asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.envoy
@pytest.mark.slow
def test_ratelimit_benchmark_small_run() -> None:
    run = subprocess.run(
        [sys.executable, "benchmarks/ratelimit.py", "--seconds", "0.3", "--requests", "30", "--concurrency", "4",
         "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["decider_memory_per_s"] > 0 and out["grpc_memory_per_s"] > 0
    modes = {"none", "local", "global_memory"} | ({"global_redis"} if shutil.which("redis-server") else set())
    assert set(out["envoy_latency"]) == modes
    if shutil.which("redis-server"):
        assert out["grpc_redis_per_s"] > 0 and out["decider_redis_concurrent_per_s"] > 0
