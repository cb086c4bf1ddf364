"""``controlplane analyze PATH...``: validate configuration files, like ``istioctl analyze``.

Prints one problem per line, ``file:line: Kind namespace/name: field.path: severity:
message``, then a summary on stderr. Exit status 0 when there is no error
(warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = (
    "Validate YAML files and folders (recursively: *.yaml, *.yml): field errors with their "
    "line, and cross-reference warnings (unknown hosts and subsets, Gateways nothing uses, "
    "subsets that select no workload; AuthorizationPolicies and RequestAuthentications that "
    "select no workload, principals or namespaces on workloads without mTLS, HTTP-only "
    "fields on TCP ports, unknown CUSTOM providers and namespaces; EnvoyFilter patches that "
    "match nothing, and, as errors, patch values Envoy cannot read or results it would refuse)."
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "analyze",
        help="validate configuration files and folders (like istioctl analyze)",
        description=DESCRIPTION,
    )
    configure(parser)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a file or folder")
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        help="namespace of resources that do not name one (default: %(default)s)",
    )
    parser.add_argument(
        "--domain-suffix",
        type=_domain_suffix,
        help=(
            "Istio's domainSuffix: Services are <name>.<namespace>.svc.<suffix> "
            "(default: cluster.local; the older form svc.cluster.local is accepted)"
        ),
    )
    parser.add_argument(
        "--mesh-config",
        type=Path,
        metavar="FILE",
        help=(
            "Istio mesh config YAML (or the istio ConfigMap), as `serve --mesh-config`: root "
            "namespace and extensionProviders (default: an istio ConfigMap among the PATHs)"
        ),
    )
    parser.add_argument("--errors-only", action="store_true", help="do not print warnings")
    parser.set_defaults(func=run)


def _domain_suffix(value: str) -> str:
    from controlplane.model.hosts import normalize_domain_suffix

    suffix = normalize_domain_suffix(value)
    if not suffix:
        raise argparse.ArgumentTypeError(f"{value!r} is not a domain suffix")
    return suffix


def run(args: argparse.Namespace) -> int:
    from controlplane.analysis import analyze_paths  # imported here: keeps `--help` fast
    from controlplane.model.base import ValidationError
    from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX
    from controlplane.sources.mesh_config import load_mesh_config

    mesh_config = None
    if args.mesh_config is not None:
        try:
            mesh_config = load_mesh_config(args.mesh_config)
        except (OSError, ValidationError) as exc:
            print(f"controlplane analyze: --mesh-config: {exc}", file=sys.stderr)
            return 1
    report = analyze_paths(
        args.paths,
        default_namespace=args.namespace,
        domain_suffix=args.domain_suffix or DEFAULT_DOMAIN_SUFFIX,
        mesh_config=mesh_config,
    )
    for diagnostic in report.diagnostics:
        if diagnostic.is_error or not args.errors_only:
            print(diagnostic)
    errors, warnings = len(report.errors), len(report.warnings)
    files = len(report.inputs.files)
    if errors or warnings:
        print(f"{errors} error(s), {warnings} warning(s) in {files} file(s)", file=sys.stderr)
    else:
        print(f"No validation issues found in {files} file(s)", file=sys.stderr)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    """``controlplane analyze`` on its own: ``python -m controlplane.cli.analyze PATH...``."""
    parser = argparse.ArgumentParser(prog="controlplane analyze", description=DESCRIPTION)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
