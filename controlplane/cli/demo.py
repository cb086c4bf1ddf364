"""``controlplane demo``: a Bookinfo-like mesh on this machine, and a guided tour of it."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from controlplane.demo.phases import PHASE_KEYS
from controlplane.demo.topology import DEFAULT_BLOCK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a local mesh (control plane, Envoy sidecars, apps) and a guided tour",
        description=(
            "Start the control plane on the demo's YAML, one real Envoy and one small app per "
            "workload (each on its own 127.0.x.y address), then change the YAML phase by phase "
            "while traffic flows and show what happened."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--phase",
        choices=PHASE_KEYS,
        help="stop after this phase (with --only: run just this one, earlier changes applied first)",
    )
    parser.add_argument("--only", action="store_true", help="run only the phase named by --phase")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of traffic per phase")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the mesh up after the tour and print how to use it (Ctrl-C stops it)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="folder for the watched config, the CA, bootstraps and logs (default: a new temp dir)",
    )
    parser.add_argument(
        "--rate", type=float, default=40.0, help="requests per second to productpage"
    )
    parser.add_argument(
        "--addresses",
        default=DEFAULT_BLOCK,
        metavar="127.X.Y",
        help=f"address block of the workloads, 127.X.Y.0/24 (default {DEFAULT_BLOCK})",
    )
    parser.add_argument(
        "--no-live", action="store_true", help="print each phase's result, no live table"
    )
    parser.add_argument(
        "--xds-plaintext",
        action="store_true",
        help="serve xDS without TLS or credentials (development only)",
    )
    parser.add_argument(
        "--pods",
        action="store_true",
        help="pods as network namespaces with iptables capture, injected by the webhook, Envoy "
        "run by the agent (needs root and iptables)",
    )
    parser.add_argument(
        "--control-plane-command",
        default="",
        help="command that runs the control plane, before `serve ...` (default: this Python's "
        "`-m controlplane`)",
    )


def run(args: argparse.Namespace) -> int:
    from controlplane.demo.supervisor import ProcessFailed
    from controlplane.demo.tour import TourOptions, run_tour

    if args.pods:
        from controlplane.demo.pods import run_pods_demo

        return run_pods_demo(args.workdir, args.keep_running)
    if args.only and not args.phase:
        raise SystemExit("--only needs --phase")
    options = TourOptions(
        workdir=args.workdir,
        phase=args.phase,
        only=args.only,
        duration=args.duration,
        keep_running=args.keep_running,
        rate=args.rate,
        block=args.addresses,
        live=not args.no_live,
        xds_tls=not args.xds_plaintext,
        control_plane_command=tuple(shlex.split(args.control_plane_command)),
    )
    try:
        return run_tour(options)
    except KeyboardInterrupt:
        print("\ninterrupted: every process the demo started is stopped")
        return 130
    except ProcessFailed as failure:
        print(f"demo stopped: {failure}", file=sys.stderr)
        return 1
