"""``controlplane bootstrap``: a complete Envoy bootstrap for a sidecar or gateway.

With ``--ca-dir`` (the control plane's CA folder) the bootstrap carries the root that
signs the xDS server's certificate and a token minted for the proxy's own identity,
so Envoy talks to port 15012 over TLS and is given its SPIFFE certificate over SDS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from controlplane.model.locality import Locality, locality_label, split_locality
from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"label {part!r} is not key=value")
        labels[key] = value
    return labels


def _locality(text: str) -> Locality:
    parts = text.split("/")
    if len(parts) > 3 or not parts[0] or "*" in text:
        raise argparse.ArgumentTypeError(f"locality {text!r} is not region[/zone[/subzone]]")
    return split_locality(text)


def _node_locality(args: argparse.Namespace) -> Locality | None:
    """As pilot-agent: the workload's locality label (``istio-locality: region.zone.subzone``),
    else ``--locality``; both must agree when both are given."""
    label = locality_label(args.labels)
    from_label = split_locality(label) if label else None
    if from_label and args.locality and from_label != args.locality:
        raise SystemExit(f"bootstrap: --locality {args.locality} disagrees with the label's {label}")
    return from_label or args.locality


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bootstrap", help="write an Envoy bootstrap for a sidecar or gateway")
    p.add_argument("--kind", choices=("sidecar", "router"), default="sidecar")
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--service-account", "-s", default="default")
    p.add_argument("--workload", default="", help="workload name (default: the app label or 'workload')")
    p.add_argument("--pod", default="", help="pod name in the node id (default: <workload>-0)")
    p.add_argument("--labels", type=_labels, default={}, help="k=v,k2=v2")
    p.add_argument("--ip", default="127.0.0.1", help="the workload's address (node id, INSTANCE_IPS)")
    p.add_argument("--locality", type=_locality, metavar="REGION/ZONE/SUBZONE",
                   help="where the proxy runs (node.locality), for locality-aware load balancing")
    p.add_argument("--interception", choices=("REDIRECT", "NONE"), default="NONE",
                   help="NONE: listeners bind explicitly (no iptables); REDIRECT: captured by iptables")
    p.add_argument("--xds-address", type=_address, default=("127.0.0.1", 15012), metavar="HOST:PORT")
    p.add_argument("--plaintext", action="store_true",
                   help="talk plaintext xDS (development port 15010); no credential, no certificates")
    p.add_argument("--ca-dir", type=Path, default=Path("certs"),
                   help="the control plane's CA folder: root certificate and token key (default %(default)s)")
    p.add_argument("--token-ttl", type=float, default=30 * 24 * 3600, metavar="SECONDS",
                   help="lifetime of a token minted from --ca-dir (default 30 days: Envoy cannot "
                        "refresh a token in its bootstrap)")
    p.add_argument("--token-file", type=Path,
                   help="use this credential (e.g. a projected ServiceAccount token) instead of minting one")
    p.add_argument("--root-cert", type=Path,
                   help="root certificate of the control plane's CA, instead of reading --ca-dir")
    p.add_argument("--delta", action="store_true", help="use delta (incremental) ADS")
    p.add_argument("--admin-port", type=int, default=15000)
    p.add_argument("--stats-port", type=int, default=15090, help="Prometheus stats listener (0 = none)")
    p.add_argument("--health-port", type=int, default=15021, help="health listener (0 = none)")
    p.add_argument("--trust-domain", default="cluster.local")
    p.add_argument("--output", "-o", type=Path, help="file to write (.yaml or .json; default: stdout as YAML)")
    p.set_defaults(func=run)


def params_from(args: argparse.Namespace) -> BootstrapParams:
    workload = args.workload or args.labels.get("app", "workload")
    root_pem = token = None
    if not args.plaintext:
        root_pem = args.root_cert.read_text() if args.root_cert else _ca_root(args)
        token = args.token_file.read_text().strip() if args.token_file else _minted_token(args)
    host, port = args.xds_address
    return BootstrapParams(
        ip=args.ip,
        pod=args.pod or f"{workload}-0",
        namespace=args.namespace,
        service_account=args.service_account,
        workload_name=workload,
        labels=args.labels,
        instance_ips=(args.ip,),
        kind=args.kind,
        xds_host=host,
        xds_port=port,
        delta=args.delta,
        xds_tls_root_pem=root_pem,
        credential_token=token,
        admin_port=args.admin_port,
        stats_port=args.stats_port or None,
        health_port=args.health_port or None,
        listen_host=args.ip,
        extra_metadata={"INTERCEPTION_MODE": args.interception},
        locality=_node_locality(args),
    )


def _ca_root(args: argparse.Namespace) -> str:
    from controlplane.ca import load_ca_folder

    return load_ca_folder(args.ca_dir, args.trust_domain).bundle.pem


def _minted_token(args: argparse.Namespace) -> str:
    from controlplane.auth import local_token_issuer

    return local_token_issuer(args.ca_dir).mint(
        args.namespace, args.service_account, ttl=timedelta(seconds=args.token_ttl)
    )


def run(args: argparse.Namespace) -> int:
    bootstrap = render_bootstrap(params_from(args))
    if args.output is None:
        import yaml

        # Plain JSON-compatible YAML: no anchors for the sections that share a dict.
        text = yaml.safe_dump(json.loads(json.dumps(bootstrap)), sort_keys=False)
        sys.stdout.write(text)
    else:
        write_bootstrap(bootstrap, args.output)
    return 0


def write_bootstrap(bootstrap: Mapping[str, Any], path: Path) -> Path:
    """Write as YAML for .yaml/.yml, JSON otherwise; returns the path.

    Mode 0600: a bootstrap may carry the proxy's token."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(dict(bootstrap), sort_keys=False)
    else:
        text = json.dumps(bootstrap, indent=2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return path
