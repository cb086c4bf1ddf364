"""``controlplane crds``: print the CustomResourceDefinitions of the Istio kinds the control
plane serves, generated from its model (``deploy/kubernetes/crds.yaml`` is this output)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "crds",
        help="print the CRDs (OpenAPI schemas generated from the model) as YAML",
    )
    parser.add_argument("--output", "-o", type=Path, metavar="FILE",
                        help="write to FILE instead of standard output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controlplane.cluster.crds import render

    text = render()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0
