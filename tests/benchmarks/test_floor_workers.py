"""The floor served from several processes on one port (``floor_server --workers N``, the
``floor-2proc`` target): every proxy converges in every scenario, connections land on every
process, each process serves what it was fed, and no process outlives the server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import grpc
import psutil
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2

from benchmarks import report, wire
from benchmarks.__main__ import PRESETS
from benchmarks.floor_server import encode_batch
from benchmarks.runner import DEFAULT_TARGETS, run
from tests.benchmarks.support import MAIN, assert_converged

REPO = Path(__file__).resolve().parents[2]
SMALL = PRESETS["small"]
CONNECTIONS = 40  # all on one of 2 processes by chance: 2**-39


@pytest.mark.parametrize("mode", ["sotw", "delta"])
async def test_two_serving_processes_converge_in_every_scenario(mode: str) -> None:
    config = replace(SMALL, targets=("floor-2proc",), scenarios=MAIN, mode=mode)
    results = await run(config)
    assert results["errors"] == []
    assert [r["scenario"] for r in results["runs"]] == list(MAIN)
    for result in results["runs"]:
        assert result["target"] == "floor-2proc"
        assert_converged(result)
    accepted = results["targets"]["floor-2proc"]["streams_accepted_per_worker"]
    assert len(accepted) == 2 and sum(accepted) >= SMALL.proxies


def test_the_two_process_floor_is_opt_in() -> None:
    assert "floor-2proc" not in DEFAULT_TARGETS


def test_the_report_compares_it_with_the_floor_but_holds_it_to_no_goal() -> None:
    runs = [{"scenario": "cold_start", "target": t, "services": 20, "proxies": 10,
             "convergence_ms": {"p99": p99, "max": p99}, "peak_rss_mb": 50.0}
            for t, p99 in (("floor", 100.0), ("floor-2proc", 80.0), ("controlplane", 150.0))]
    assert [(r["target"], r["p99"]) for r in report.ratios(runs)] == [
        ("floor-2proc", 0.8), ("controlplane", 1.5)]
    assert {row["target"] for row in report.goals(runs)} == {"controlplane"}


async def _start_floor(workers: int) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.floor_server", "--port", "0", "--workers", str(workers),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    event = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
    assert event["ev"] == "listening"
    return process, event["port"]


async def _event(process: asyncio.subprocess.Process, kind: str) -> dict:
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, f"the floor exited before {kind}"
        event = json.loads(line)
        if event["ev"] == kind:
            return event


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _first_cds(port: int) -> list[str]:
    """One proxy's own connection and stream: the names of its first CDS response."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.stream_stream(wire.ADS_SOTW, request_serializer=None,
                                     response_deserializer=None)()
        await call.write(discovery_pb2.DiscoveryRequest(type_url=wire.CLUSTER).SerializeToString())
        response = discovery_pb2.DiscoveryResponse.FromString(await call.read())
        call.cancel()
    return [cluster_pb2.Cluster.FromString(r.value).name for r in response.resources]


async def test_connections_spread_over_the_processes_and_each_serves_its_batches() -> None:
    process, port = await _start_floor(2)
    try:
        children = psutil.Process(process.pid).children()
        assert len(children) == 1
        assert process.stdin is not None
        for version, names in (("1", ["a"]), ("2", ["a", "b"])):
            clusters = {n: (version, cluster_pb2.Cluster(name=n).SerializeToString()) for n in names}
            process.stdin.write(encode_batch([{"group": "g.ns", "type_url": wire.CLUSTER,
                                               "set": clusters}]))
            await process.stdin.drain()
            await _event(process, "applied")  # by both processes
        got = await asyncio.gather(*(_first_cds(port) for _ in range(CONNECTIONS)))
        assert got == [["a", "b"]] * CONNECTIONS  # whichever process took the connection
        process.stdin.close()
        accepted = (await _event(process, "served"))["accepted"]
        assert len(accepted) == 2 and sum(accepted) == CONNECTIONS
        assert min(accepted) > 0, accepted
        assert await asyncio.wait_for(process.wait(), 15) == 0
        assert not any(_alive(c) for c in children)
    finally:
        await _stop(process)


async def test_workers_exit_when_the_serving_parent_is_killed() -> None:
    process, _ = await _start_floor(3)
    try:
        children = psutil.Process(process.pid).children()
        assert len(children) == 2
        process.send_signal(signal.SIGKILL)
        await process.wait()
        # Their input is the dead parent's pipe: its end of file stops them.
        deadline = asyncio.get_running_loop().time() + 15
        while any(_alive(c) for c in children) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert not any(_alive(c) for c in children)
    finally:
        await _stop(process)
