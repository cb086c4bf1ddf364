"""``controlplane agent``: run Envoy with the agent beside it, as Istio's pilot-agent (see
``controlplane/agent``). In a pod the injector passes the pod's identity, the projected token
and the CA root; a local run passes a token file (``controlplane ca token > FILE``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
from pathlib import Path

from controlplane.agent import Agent, AgentError, AgentSettings
from controlplane.cli.bootstrap import _address, _labels


def labels_file(path: Path) -> dict[str, str]:
    """The downward API's ``metadata.labels`` file: ``key="value"`` lines."""
    labels: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            labels[key.strip()] = value.strip().strip('"')
    return labels


def _envoy() -> str:
    found = shutil.which("envoy") or str(Path(sys.prefix) / "bin" / "envoy")
    return found


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("agent", help="run Envoy beside an agent proxying its xDS (as pilot-agent)")
    p.add_argument("--pod", required=True)
    p.add_argument("--namespace", "-n", default="default")
    p.add_argument("--service-account", "-s", default="default")
    p.add_argument("--ip", required=True, help="the pod's address")
    p.add_argument("--labels", type=_labels, default={}, help="k=v,k2=v2")
    p.add_argument("--labels-file", type=Path, help="the downward API labels file (adds to --labels)")
    p.add_argument("--workload", default="")
    p.add_argument("--interception", choices=("REDIRECT", "NONE"), default="REDIRECT")
    p.add_argument("--kind", choices=("sidecar", "router"), default="sidecar",
                   help="router: a gateway (Istio's gateway injection template)")
    p.add_argument("--domain-suffix", default="cluster.local")
    p.add_argument("--xds-address", type=_address, default=("127.0.0.1", 15012), metavar="HOST:PORT")
    p.add_argument("--xds-server-name", default="istiod.istio-system.svc",
                   help="the name the control plane's certificate must carry")
    p.add_argument("--root-cert", type=Path, help="root certificate of the control plane's CA")
    p.add_argument("--token-file", type=Path, help="the credential, re-read for every connection")
    p.add_argument("--ca-dir", type=Path,
                   help="local runs: mint a short-lived token from this CA folder for every connection")
    p.add_argument("--token-ttl", type=float, default=600.0, metavar="SECONDS",
                   help="lifetime of a token minted with --ca-dir (default %(default)s)")
    p.add_argument("--plaintext", action="store_true", help="the plaintext development port (no TLS)")
    p.add_argument("--delta", action="store_true")
    p.add_argument("--workdir", type=Path, default=Path("/etc/istio/proxy"),
                   help="bootstrap and xDS socket (default %(default)s)")
    p.add_argument("--envoy-binary", default=None)
    p.add_argument("--envoy-uid", type=int, help="run Envoy as this user (1337 in a pod)")
    p.add_argument("--envoy-gid", type=int)
    p.add_argument("--envoy-log-level", default="warning")
    p.add_argument("--admin-port", type=int, default=15000)
    p.add_argument("--stats-port", type=int, default=15090)
    p.add_argument("--ready-port", type=int, default=15021)
    p.add_argument("--status-port", type=int, default=15020)
    p.add_argument("--listen-host", default="0.0.0.0", help="where 15021 and 15020 listen")
    p.add_argument("--app-metrics-port", type=int, help="the app's own Prometheus port, merged into 15020")
    p.add_argument("--app-metrics-path", default="/metrics")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> AgentSettings:
    if not args.plaintext and (args.root_cert is None or (args.token_file is None) == (args.ca_dir is None)):
        raise SystemExit("agent: --root-cert and one of --token-file or --ca-dir are needed "
                         "(or --plaintext for development)")
    labels = dict(args.labels)
    if args.labels_file is not None:
        labels.update(labels_file(args.labels_file))
    host, port = args.xds_address
    return AgentSettings(
        namespace=args.namespace, pod=args.pod, ip=args.ip, service_account=args.service_account,
        labels=labels, workload_name=args.workload, interception=args.interception, kind=args.kind,
        domain_suffix=args.domain_suffix, xds_host=host, xds_port=port,
        xds_server_name=args.xds_server_name,
        root_cert=None if args.plaintext else args.root_cert,
        token_file=None if args.plaintext else args.token_file,
        token_ca_dir=None if args.plaintext else args.ca_dir,
        token_ttl_seconds=args.token_ttl,
        delta=args.delta, workdir=args.workdir, envoy_binary=args.envoy_binary or _envoy(),
        envoy_uid=args.envoy_uid, envoy_gid=args.envoy_gid, envoy_log_level=args.envoy_log_level,
        admin_port=args.admin_port, stats_port=args.stats_port, ready_port=args.ready_port,
        status_port=args.status_port, listen_host=args.listen_host,
        app_metrics_port=args.app_metrics_port, app_metrics_path=args.app_metrics_path,
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from(args)
    try:
        return asyncio.run(Agent(settings).run())
    except AgentError as error:
        print(f"agent: {error}", file=sys.stderr)
        return 1
