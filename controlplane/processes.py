"""Stopping child processes the project starts (Envoy, servers, pods' apps): politely, then
for sure. One implementation for the demo, the pods harness, benchmarks and tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from typing import Any


def stop_processes(processes: Iterable[subprocess.Popen[Any]], grace: float = 10.0) -> None:
    """SIGTERM to every process still running, then SIGKILL to those not gone within
    ``grace`` seconds (one deadline for all, so N hung processes cost ``grace``, not N times it)."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> int:
    """SIGTERM, SIGKILL after ``grace`` seconds; returns the exit status."""
    stop_processes((process,), grace)
    return process.wait()
