"""The agent's one settings object (built by ``controlplane agent``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX


@dataclass(frozen=True)
class AgentSettings:
    # Who the proxy is (what Envoy's node claims; the token proves it).
    namespace: str
    pod: str
    ip: str
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    workload_name: str = ""
    interception: str = "REDIRECT"  # REDIRECT: captured by iptables (virtualOutbound/Inbound)
    kind: str = "sidecar"  # or "router": a gateway pod (Istio's gateway injection template)
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    # The control plane: TLS with this root (None: the plaintext development port).
    xds_host: str = "127.0.0.1"
    xds_port: int = 15012
    xds_server_name: str = "istiod.istio-system.svc"
    root_cert: Path | None = None
    token_file: Path | None = None  # a projected ServiceAccount token (or a local one)
    # Local runs: a token minted from the CA folder for every connection, short-lived since
    # nothing has to keep it (Envoy never sees it).
    token_ca_dir: Path | None = None
    token_ttl_seconds: float = 600.0
    delta: bool = False
    # Where the bootstrap and the xDS socket go (a directory only the proxy user can enter).
    workdir: Path = field(default_factory=lambda: Path("/etc/istio/proxy"))
    envoy_binary: str = "envoy"
    envoy_uid: int | None = None  # run Envoy as this user (1337 in a pod); None: ours
    envoy_gid: int | None = None
    envoy_log_level: str = "warning"
    envoy_concurrency: int = 2
    # Ports: Envoy's admin and Prometheus stats; the agent's readiness and merged stats.
    admin_port: int = 15000
    stats_port: int = 15090
    ready_port: int = 15021
    status_port: int = 15020
    listen_host: str = "0.0.0.0"
    # The app's own scrape settings (prometheus.io/port and path), merged into 15020.
    app_metrics_port: int | None = None
    app_metrics_path: str = "/metrics"
    stop_grace_seconds: float = 5.0
