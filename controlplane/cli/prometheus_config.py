"""``controlplane prometheus-config``: a Prometheus configuration for the local mesh.

It scrapes the control plane's monitoring port (15014) and every sidecar the control plane
serves (discovered over HTTP from the same port, ``/debug/prometheus_sd``), and renames
Envoy's prefixed Istio metrics back to Istio's names (``metric_relabel_configs``), so Istio's
PromQL works unchanged. ``--kubernetes`` prints the in-cluster one instead (the file
``deploy/prometheus/prometheus.yaml``, as Istio's addon).
"""

from __future__ import annotations

import argparse
import sys

import yaml

from controlplane.cli.monitoring_client import add_monitoring_address
from controlplane.translate.istio_metrics.prometheus import kubernetes_config, local_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prometheus-config", help="a Prometheus scrape configuration for Istio's metrics"
    )
    add_monitoring_address(p)
    p.add_argument("--scrape-interval", default="15s", help="Prometheus duration (default 15s)")
    p.add_argument("--kubernetes", action="store_true", help="the in-cluster configuration")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.kubernetes:
        config = kubernetes_config(interval=args.scrape_interval)
    else:
        address = args.monitoring_address.split("://")[-1].rstrip("/")
        config = local_config(address, interval=args.scrape_interval)
    sys.stdout.write(yaml.safe_dump(config, sort_keys=False))
    return 0
