"""The ``controlplane`` command. Each subcommand lives in its own module of this package
with ``add_parser(subparsers)``; the parser it adds sets ``func`` to the function that runs it."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "demo",
    "serve",
    "bootstrap",
    "analyze",
    "ca",
    "proxy_status",
    "proxy_config",
    "dashboard",
    "prometheus_config",
    "ratelimit",
    "kube_inject",
    "agent",
    "capture",
    "crds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="controlplane",
        description="An Istio-compatible control plane for Envoy.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"controlplane.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
