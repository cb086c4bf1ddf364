"""``controlplane kube-inject -f FILE``: inject sidecars into Kubernetes YAML offline, as
``istioctl kube-inject`` does (Pods and every kind holding a pod template; the rest passes
through). Errors name the file, the object and the annotation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from controlplane.inject import InjectionError, InjectorSettings, inject_documents

MAX_INPUT_BYTES = 16 * 1024 * 1024


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("kube-inject", help="inject sidecars into Kubernetes YAML (offline)")
    p.add_argument("-f", "--filename", required=True, help="YAML file ('-' for stdin)")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    p.add_argument("--revision", default="default", help="istio.io/rev written on injected pods")
    p.add_argument("--image", default=InjectorSettings.image, help="image running the agent and capture")
    p.add_argument("--xds-address", default=InjectorSettings.xds_address, metavar="HOST:PORT")
    p.add_argument("--no-native-sidecar", action="store_true",
                   help="put the proxy among the containers, not as a restartable init container")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    name = "<stdin>" if args.filename == "-" else args.filename
    text = sys.stdin.read(MAX_INPUT_BYTES + 1) if args.filename == "-" else _read(Path(args.filename))
    if len(text) > MAX_INPUT_BYTES:
        print(f"kube-inject: {name}: larger than {MAX_INPUT_BYTES} bytes", file=sys.stderr)
        return 1
    settings = InjectorSettings(
        revision=args.revision, image=args.image, xds_address=args.xds_address,
        native_sidecars=not args.no_native_sidecar,
    )
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
        injected = inject_documents(documents, settings)
    except yaml.YAMLError as error:
        print(f"kube-inject: {name}: not YAML: {error}", file=sys.stderr)
        return 1
    except InjectionError as error:
        print(f"kube-inject: {name}: {error}", file=sys.stderr)
        return 1
    out = yaml.safe_dump_all(injected, sort_keys=False, explicit_start=False)
    if args.output:
        args.output.write_text(out)
    else:
        sys.stdout.write(out)
    return 0


def _read(path: Path) -> str:
    try:
        with path.open() as f:
            return f.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise SystemExit(f"kube-inject: {path}: {error.strerror}") from None
