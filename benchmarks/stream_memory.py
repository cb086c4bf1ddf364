"""Memory per connected proxy: the control plane and the floor, in the same run.

For each target: start it on the benchmark mesh, connect P1 load-client proxies, wait until
all synced, read RSS; connect P2 - P1 more (distinct proxies, the same groups), read RSS
again. The figure is (RSS(P2) - RSS(P1)) / (P2 - P1): what one more connected proxy costs,
without the mesh, the translation or the interpreter. The floor (``floor_server.py``, the
same grpc.aio) shows what gRPC's own per-stream state costs.

    .venv/bin/python -m benchmarks.stream_memory [--services 1000] [--proxies 100,1000]
        [--targets floor,controlplane] [--mode sotw] [--tracemalloc]

``--tracemalloc`` runs the control plane once more under tracemalloc
(``benchmarks/traced_serve.py``) and lists the 15 source lines whose Python allocations
grew most between P1 and P2, per extra proxy (tracemalloc slows the server: RSS figures
come from the untraced run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks import mesh, readiness
from benchmarks import plan as plans
from benchmarks.clients import ClientConfig, ClientPool
from benchmarks.targets import DEFAULT_CP_COMMAND, ControlPlaneTarget, FloorTarget, Target

TRACED_CP_COMMAND = DEFAULT_CP_COMMAND.replace(
    "{python} -m controlplane",
    "{python} -m benchmarks.traced_serve --snapshot-dir {workdir}/snapshots",
)
SETTLE_SECONDS = 2.0  # after the last proxy synced: ACKs handled, buffers returned


async def _connect(target: Target, plan: plans.Plan, first: int, count: int, mode: str,
                   processes: int, timeout: float) -> ClientPool:
    pool = ClientPool(ClientConfig(
        target=target.address, proxies=count, groups=plan.groups,
        namespaces=plan.spec.namespaces, mode=mode, processes=processes, first=first,
    ))
    await pool.start()
    await pool.connect()
    if not await pool.wait_synced(timeout):
        raise RuntimeError(f"{target.name}: {count - len(pool.synced)} of {count} proxies "
                           f"did not sync within {timeout:.0f} s")
    await asyncio.sleep(SETTLE_SECONDS)
    return pool


async def measure(target: Target, plan: plans.Plan, levels: tuple[int, int], mode: str,
                  processes: int, timeout: float,
                  at_level: Any = None) -> dict[str, Any]:
    """RSS at P1 and P2 proxies; ``at_level(index)`` runs once each level is synced."""
    p1, p2 = levels
    await target.start(plan.initial, plan.initial_expected)
    pools: list[ClientPool] = []
    try:
        last = plan.initial.cluster_name(len(plan.initial.services) - 1)
        await readiness.wait_serving(target.address, last)
        assert target.monitor is not None
        rss = []
        for index, (first, count) in enumerate(((0, p1), (p1, p2 - p1))):
            pools.append(await _connect(target, plan, first, count, mode, processes, timeout))
            rss.append(target.monitor.rss())
            if at_level is not None:
                await at_level(index)
        return {
            "target": target.name, "mode": mode, "services": len(plan.initial.services),
            "proxies": list(levels),
            "rss_mb": [round(r / 2**20, 1) for r in rss],
            "peak_rss_mb": round(target.monitor.overall_peak / 2**20, 1),
            "kb_per_proxy": round((rss[1] - rss[0]) / 1024 / (p2 - p1), 1),
        }
    finally:
        for pool in pools:
            await pool.stop()
        await target.stop()


async def traced(plan: plans.Plan, levels: tuple[int, int], mode: str, processes: int,
                 timeout: float, top: int) -> list[tuple[str, float, float]]:
    """(source line, KB per extra proxy, blocks per extra proxy) of the lines whose Python
    allocations grew most from P1 to P2."""
    with tempfile.TemporaryDirectory(prefix="cp-traced-") as tmp:
        target = ControlPlaneTarget(TRACED_CP_COMMAND, Path(tmp))
        snapshots = Path(tmp) / "snapshots"

        async def take(index: int) -> None:
            assert target.process is not None
            os.kill(target.process.pid, signal.SIGUSR1)
            done = snapshots / f"{index + 1}.done"
            deadline = time.monotonic() + 120
            while not done.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("no tracemalloc snapshot")
                await asyncio.sleep(0.2)

        await measure(target, plan, levels, mode, processes, timeout, take)
        before = tracemalloc.Snapshot.load(str(snapshots / "1.snapshot"))
        after = tracemalloc.Snapshot.load(str(snapshots / "2.snapshot"))
    extra = levels[1] - levels[0]
    rows = []
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        where = f"{_short_path(frame.filename)}:{frame.lineno}"
        rows.append((where, stat.size_diff / 1024 / extra, round(stat.count_diff / extra, 1)))
    return rows


def _short_path(filename: str) -> str:
    for marker in ("/site-packages/", "/main/", "/lib/python"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--proxies", default="100,1000", help="P1,P2")
    parser.add_argument("--targets", default="floor,controlplane")
    parser.add_argument("--mode", default="sotw", choices=("sotw", "delta"))
    parser.add_argument("--processes", type=int, default=4, help="load-client processes")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--cp-command", default=DEFAULT_CP_COMMAND,
                        help="how to start the control plane (benchmarks.targets' placeholders)")
    args = parser.parse_args()
    p1, p2 = (int(p) for p in args.proxies.split(","))
    if not 0 < p1 < p2:
        parser.error("--proxies wants P1,P2 with 0 < P1 < P2")
    spec = mesh.MeshSpec(services=args.services, endpoints=args.endpoints,
                         virtual_services=args.services // 5,
                         destination_rules=args.services // 5, namespaces=10)
    plan = plans.build(spec, args.groups, 0, full=False)
    gc.collect()
    targets = {"floor": FloorTarget, "controlplane": lambda: ControlPlaneTarget(args.cp_command)}
    print(f"S={args.services} E={args.endpoints} groups={args.groups} {args.mode}, "
          f"P {p1} -> {p2}; load {os.getloadavg()[0]:.2f}")
    print("| target | RSS at P1 MB | RSS at P2 MB | peak RSS MB | KB per extra proxy |")
    print("|---|---|---|---|---|")
    for name in args.targets.split(","):
        row = asyncio.run(measure(targets[name](), plan, (p1, p2), args.mode,
                                  args.processes, args.timeout))
        print(f"| {name} | {row['rss_mb'][0]:,.1f} | {row['rss_mb'][1]:,.1f} | "
              f"{row['peak_rss_mb']:,.1f} | {row['kb_per_proxy']:,.1f} |", flush=True)
    if args.tracemalloc:
        rows = asyncio.run(traced(plan, (p1, p2), args.mode, args.processes, args.timeout,
                                  args.top))
        total = sum(kb for _, kb, _ in rows)
        print(f"\ncontrol plane, Python allocations per extra proxy (top {args.top}: "
              f"{total:,.1f} KB)")
        print("| source line | KB per proxy | blocks per proxy |")
        print("|---|---|---|")
        for where, kb, blocks in rows:
            print(f"| {where} | {kb:,.2f} | {blocks:,} |")


if __name__ == "__main__":
    main()
