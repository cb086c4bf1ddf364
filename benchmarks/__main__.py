"""The load benchmark suite.

    python -m benchmarks                      # full run: S=1,000 services, P=1,000 proxies
    python -m benchmarks --preset small       # seconds: a tiny mesh, for a quick look
    python -m benchmarks --targets floor --scenarios cold_start,endpoint_churn
    python -m benchmarks --targets controlplane,controlplane-kube --scenarios new_service

Results go to benchmarks/results/<date-time>/ (results.json, summary.md, *.png).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from benchmarks import mesh, report
from benchmarks.kube_target import DEFAULT_KUBE_CP_COMMAND
from benchmarks.runner import DEFAULT_TARGETS, SCENARIOS, TARGETS, RunConfig
from benchmarks.runner import run as run_benchmarks
from benchmarks.targets import DEFAULT_CP_COMMAND

PRESETS = {
    "full": RunConfig(
        spec=mesh.MeshSpec(services=1000, endpoints=4, virtual_services=200,
                           destination_rules=200, namespaces=10),
        proxies=1000, groups=4, processes=4, churn_changes=10, churn_rate=1.0, timeout=180.0,
    ),
    "small": RunConfig(
        spec=mesh.MeshSpec(services=20, endpoints=2, virtual_services=4, destination_rules=4,
                           namespaces=3),
        proxies=10, groups=2, processes=2, churn_changes=5, churn_rate=20.0, timeout=30.0,
        scaling_services=(10, 40), scaling_services_proxies=3, scaling_proxies=(2, 8), envoys=2,
    ),
}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _names(allowed: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(x for x in text.split(",") if x)
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)} (choose from {', '.join(allowed)})")
        return names
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="full")
    p.add_argument("--services", type=int, help="S")
    p.add_argument("--endpoints", type=int, help="E, per service")
    p.add_argument("--virtual-services", type=int, help="V")
    p.add_argument("--destination-rules", type=int, help="D")
    p.add_argument("--namespaces", type=int, help="N")
    p.add_argument("--proxies", type=int, help="P, simulated sidecars")
    p.add_argument("--groups", type=int, help="workloads the proxies belong to")
    p.add_argument("--processes", type=int, help="load client processes")
    p.add_argument("--mode", choices=("sotw", "delta"))
    p.add_argument("--churn-changes", type=int)
    p.add_argument("--churn-rate", type=float, help="endpoint changes per second")
    p.add_argument("--timeout", type=float, help="seconds to wait for convergence, per scenario")
    p.add_argument("--targets", type=_names(TARGETS),
                   help=f"comma-separated: {','.join(TARGETS)} (default {','.join(DEFAULT_TARGETS)})")
    p.add_argument("--scenarios", type=_names(SCENARIOS),
                   help=f"comma-separated: {','.join(SCENARIOS)}")
    p.add_argument("--scaling-services", type=_ints, help="e.g. 100,1000,5000")
    p.add_argument("--scaling-proxies", type=_ints, help="e.g. 10,100,1000")
    p.add_argument("--envoys", type=int, help="real Envoys in the envoy_churn scenario")
    p.add_argument("--cp-command", default=DEFAULT_CP_COMMAND,
                   help="how to start the control plane ({python} {config_dir} {port} "
                        "{monitoring_port} {workdir} are filled in)")
    p.add_argument("--kube-cp-command", default=DEFAULT_KUBE_CP_COMMAND,
                   help="how to start the control plane of the controlplane-kube target (as "
                        "--cp-command, with {kubeconfig} instead of {config_dir})")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    return p


def config_from(args: argparse.Namespace) -> RunConfig:
    config = PRESETS[args.preset]
    spec_changes = {k: v for k, v in {
        "services": args.services, "endpoints": args.endpoints,
        "virtual_services": args.virtual_services, "destination_rules": args.destination_rules,
        "namespaces": args.namespaces}.items() if v is not None}
    changes = {k: v for k, v in {
        "proxies": args.proxies, "groups": args.groups, "processes": args.processes,
        "mode": args.mode, "churn_changes": args.churn_changes, "churn_rate": args.churn_rate,
        "timeout": args.timeout, "targets": args.targets, "scenarios": args.scenarios,
        "scaling_services": args.scaling_services, "scaling_proxies": args.scaling_proxies,
        "envoys": args.envoys}.items() if v is not None}
    return replace(config, spec=replace(config.spec, **spec_changes), cp_command=args.cp_command,
                   kube_cp_command=args.kube_cp_command, **changes)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from(args)
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("benchmarks", total=_steps(config))

        def step(message: str) -> None:
            done = progress.tasks[0].completed + 1
            progress.update(task, description=message, completed=done,
                            total=max(progress.tasks[0].total or 0, done + 1))

        results = asyncio.run(run_benchmarks(config, step))
        progress.update(task, description="done", completed=progress.tasks[0].total)
    directory = report.results_dir(args.out)
    written = report.write(results, directory)
    console.print(f"results: {directory}")
    for path in written:
        console.print(f"  {path.name}")
    sys.stdout.write((directory / "summary.md").read_text())
    return 1 if results["errors"] else 0


def _steps(config: RunConfig) -> int:
    """Roughly how many progress messages the run will print (the bar's length)."""
    targets = len(config.targets)
    main = sum(s in config.scenarios for s in ("cold_start", "endpoint_churn", "routing_change",
                                               "new_service"))
    steps = 1 + targets * (1 + main) if main else 0
    if "scaling_services" in config.scenarios:
        steps += len(config.scaling_services) * (1 + targets * 2)
    if "scaling_proxies" in config.scenarios:
        steps += len(config.scaling_proxies) * targets * 3
    if "envoy_churn" in config.scenarios:
        steps += targets * 3
    if "peer" in config.scenarios:
        steps += 2
    return max(1, steps)


if __name__ == "__main__":
    sys.exit(main())
