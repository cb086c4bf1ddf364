"""``controlplane capture``: install Istio's capture rules in a pod's network namespace (what
the injected ``istio-init`` step runs), taking istio-iptables' own flags; ``--dry-run`` prints
the ``iptables-restore`` input instead."""

from __future__ import annotations

import argparse
import sys

from controlplane.capture.apply import apply_capture
from controlplane.capture.rules import restore_input
from controlplane.capture.spec import CaptureError, add_flags, spec_from_namespace


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("capture", help="install the sidecar's iptables capture (as istio-iptables)")
    p.add_argument("--netns", help="the pod's network namespace (ip netns name; default: this one)")
    p.add_argument("--dry-run", action="store_true", help="print the iptables-restore input only")
    add_flags(p)
    p.set_defaults(func=run, include_outbound_ranges="*", include_inbound_ports="*")


def run(args: argparse.Namespace) -> int:
    try:
        spec = spec_from_namespace(args)
        if args.dry_run:
            sys.stdout.write(restore_input(spec))
        else:
            apply_capture(spec, args.netns)
    except CaptureError as error:
        print(f"capture: {error}", file=sys.stderr)
        return 1
    return 0
