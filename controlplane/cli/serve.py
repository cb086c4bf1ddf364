"""``controlplane serve``: run the control plane until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from controlplane.server import logs
from controlplane.server.settings import Settings
from controlplane.xds.limits import XdsLimits


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve xDS to Envoy proxies from YAML folders or Kubernetes")
    p.add_argument("--config-dir", action="append", type=Path, default=[], metavar="DIR",
                   help="folder of Kubernetes/Istio YAML, watched for changes (repeatable)")
    p.add_argument("--kubernetes", action="store_true", help="read input from the Kubernetes API")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster or ~/.kube/config)")
    p.add_argument("--listen-host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--monitoring-host", metavar="ADDR",
                   help="address of the metrics and debug port (default: --listen-host); "
                        "keep it 127.0.0.1 when xDS listens on 0.0.0.0")
    p.add_argument("--system-namespace", default="istio-system", metavar="NS",
                   help="with --kubernetes: the namespace of the control plane's Lease and CA "
                        "Secret (default %(default)s)")
    p.add_argument("--replica-name", default="", metavar="NAME",
                   help="with --kubernetes: this replica's Lease holder identity (the pod's "
                        "name; default host name and process id)")
    p.add_argument("--no-ca-secret", action="store_true",
                   help="with --kubernetes: keep the CA only in --ca-dir, not in the Secret "
                        "cacerts / istio-ca-secret that every replica shares")
    p.add_argument("--no-leader-election", action="store_true",
                   help="with --kubernetes: do singleton work (root ConfigMaps, status) without "
                        "electing a leader on a Lease; only for a single replica")
    p.add_argument("--lease-duration", type=float, default=30.0, metavar="SECONDS",
                   help="leader election: how long a lease lasts unrenewed (default %(default)s)")
    p.add_argument("--lease-renew-deadline", type=float, default=15.0, metavar="SECONDS",
                   help="leader election: the leader steps down if it could not renew for this "
                        "long (default %(default)s)")
    p.add_argument("--lease-retry-period", type=float, default=5.0, metavar="SECONDS",
                   help="leader election: how often to renew or try to acquire (default %(default)s)")
    p.add_argument("--xds-plaintext-port", type=int, metavar="PORT",
                   help="plaintext xDS, for development only; off unless given (Istio uses 15010)")
    p.add_argument("--xds-tls-port", type=int, default=15012, metavar="PORT",
                   help="xDS over TLS with a certificate from the CA (default %(default)s; 0 = any free port)")
    p.add_argument("--no-xds-tls", action="store_true", help="do not serve xDS over TLS")
    p.add_argument("--xds-allow-anonymous", action="store_true",
                   help="serve proxies without a credential on the TLS port too (development "
                        "only; istiod refuses them; they never get secrets)")
    limits = XdsLimits()
    p.add_argument("--xds-max-request-bytes", type=int, default=limits.max_request_bytes,
                   metavar="BYTES", help="largest xDS request accepted (default %(default)s)")
    p.add_argument("--xds-max-names-per-subscription", type=int,
                   default=limits.max_names_per_subscription, metavar="N",
                   help="resource names one stream subscribes to per type (default %(default)s)")
    p.add_argument("--xds-max-names-per-stream", type=int, default=limits.max_names_per_stream,
                   metavar="N", help="resource names one stream subscribes to (default %(default)s)")
    p.add_argument("--xds-max-streams-per-identity", type=int,
                   default=limits.max_streams_per_identity, metavar="N",
                   help="open xDS streams per proven identity, 0 = no cap (default %(default)s)")
    p.add_argument("--xds-max-streams-per-peer", type=int, default=limits.max_streams_per_peer,
                   metavar="N", help="open xDS streams per peer address of proxies without a "
                                     "credential, 0 = no cap (default %(default)s)")
    p.add_argument("--xds-new-streams-per-second", type=float,
                   default=limits.new_streams_per_second, metavar="RATE",
                   help="new xDS streams accepted per second, as Istio's "
                        "PILOT_MAX_REQUESTS_PER_SECOND, 0 = no limit (default %(default)s)")
    p.add_argument("--xds-new-streams-burst", type=int, default=limits.new_streams_burst,
                   metavar="N", help="new xDS streams accepted at once (default %(default)s)")
    p.add_argument("--xds-push-throttle", type=int, default=limits.max_concurrent_pushes,
                   metavar="N", help="xDS streams building or sending responses at once, as "
                                     "Istio's PILOT_PUSH_THROTTLE, 0 = no limit (default %(default)s)")
    p.add_argument("--monitoring-port", type=int, default=15014, metavar="PORT",
                   help="metrics and debug endpoints (default %(default)s)")
    p.add_argument("--prometheus-url", metavar="URL",
                   help="the mesh graph (/graph on the monitoring port) reads Istio's metrics from this "
                   "Prometheus; default: it scrapes the sidecars it serves")
    p.add_argument("--injection-webhook-port", type=int, metavar="PORT",
                   help="serve the sidecar injection webhook (POST /inject, TLS) here; istiod uses 15017")
    p.add_argument("--injection-image", default="controlplane/proxy:latest", metavar="IMAGE",
                   help="image of the injected istio-init and istio-proxy (controlplane with Envoy)")
    p.add_argument("--ca-dir", type=Path, default=Path("certs"), help="CA folder (default %(default)s)")
    p.add_argument("--trust-domain", default="cluster.local")
    p.add_argument("--mesh-config", type=Path, metavar="FILE",
                   help="Istio mesh config YAML (or the istio ConfigMap): access logs, tracing, providers")
    p.add_argument("--cert-ttl", type=float, default=24 * 3600, metavar="SECONDS",
                   help="workload certificate lifetime (default 24 h)")
    p.add_argument("--debounce-after", type=float, default=0.1, metavar="SECONDS")
    p.add_argument("--debounce-max", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--jwks-refresh-interval", type=float, default=20 * 60, metavar="SECONDS",
                   help="refetch the JWKS of RequestAuthentication jwksUri this often (default 20 min)")
    p.add_argument("--jwks-refresh-on-failure", type=float, default=60.0, metavar="SECONDS",
                   help="retry a failed JWKS fetch after this long, doubling up to the refresh interval")
    p.add_argument("--log-level", default="info", help="e.g. info or warning,xds=debug")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> Settings:
    from controlplane.cluster.leader import LeaseSettings

    # Checked here so that a bad combination is a usage error, not a crash at start.
    LeaseSettings(lease_duration=args.lease_duration, renew_deadline=args.lease_renew_deadline,
                  retry_period=args.lease_retry_period)
    return Settings(
        config_dirs=tuple(args.config_dir),
        kubernetes=args.kubernetes,
        kubeconfig=args.kubeconfig,
        listen_host=args.listen_host,
        monitoring_host=args.monitoring_host,
        system_namespace=args.system_namespace,
        replica_name=args.replica_name,
        ca_from_secret=not args.no_ca_secret,
        leader_election=not args.no_leader_election,
        lease_duration_seconds=args.lease_duration,
        lease_renew_deadline_seconds=args.lease_renew_deadline,
        lease_retry_period_seconds=args.lease_retry_period,
        xds_plaintext_port=args.xds_plaintext_port,
        xds_tls_port=None if args.no_xds_tls else args.xds_tls_port,
        monitoring_port=args.monitoring_port,
        prometheus_url=args.prometheus_url,
        injection_webhook_port=args.injection_webhook_port,
        injection_image=args.injection_image,
        xds_allow_anonymous=args.xds_allow_anonymous,
        xds_limits=dataclasses.replace(
            XdsLimits(),
            max_request_bytes=args.xds_max_request_bytes,
            max_names_per_subscription=args.xds_max_names_per_subscription,
            max_names_per_stream=args.xds_max_names_per_stream,
            max_streams_per_identity=args.xds_max_streams_per_identity,
            max_streams_per_peer=args.xds_max_streams_per_peer,
            new_streams_per_second=args.xds_new_streams_per_second,
            new_streams_burst=args.xds_new_streams_burst,
            max_concurrent_pushes=args.xds_push_throttle,
        ),
        trust_domain=args.trust_domain,
        ca_dir=args.ca_dir,
        workload_cert_ttl_seconds=args.cert_ttl,
        debounce_after_seconds=args.debounce_after,
        debounce_max_seconds=args.debounce_max,
        log_level=args.log_level,
        log_format=args.log_format,
        mesh_config_file=args.mesh_config,
        jwks_refresh_seconds=args.jwks_refresh_interval,
        jwks_refresh_on_failure_seconds=args.jwks_refresh_on_failure,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ValueError as exc:  # a limit or lease timing out of range
        raise SystemExit(f"controlplane serve: {exc}") from exc
    logs.configure(settings.log_level, settings.log_format)
    if not settings.config_dirs and not settings.kubernetes:
        raise SystemExit("controlplane serve: give --config-dir DIR or --kubernetes")
    if settings.mesh_config_file is not None:  # fail before serving, naming file and field
        from controlplane.model.base import ValidationError
        from controlplane.sources.mesh_config import load_mesh_config

        try:
            load_mesh_config(settings.mesh_config_file)
        except (OSError, ValidationError) as exc:
            raise SystemExit(f"controlplane serve: --mesh-config: {exc}") from exc
    from controlplane.ca import CAError
    from controlplane.server.runtime import run as run_control_plane

    try:
        run_control_plane(settings)
    except CAError as exc:  # e.g. the CA Secret unreadable: named, without a traceback
        raise SystemExit(f"controlplane serve: {exc}") from exc
    return 0
