"""The one settings object, built by the CLI and passed down; no module reads the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX
from controlplane.xds.limits import XdsLimits


@dataclass(frozen=True)
class Settings:
    # Where input comes from.
    config_dirs: tuple[Path, ...] = ()
    kubernetes: bool = False
    kubeconfig: Path | None = None
    # Running as replicas in a cluster (with ``kubernetes``): the namespace the control plane
    # runs in (its Lease, its CA Secret), this replica's name (the Lease holder identity), the
    # CA root kept in a Secret (Istio's cacerts or istio-ca-secret), and leader election on a
    # Lease for singleton work (istiod's defaults: 30 s lease, 15 s renew deadline, 5 s retry).
    system_namespace: str = "istio-system"
    replica_name: str = ""
    ca_from_secret: bool = True
    leader_election: bool = True
    lease_duration_seconds: float = 30.0
    lease_renew_deadline_seconds: float = 15.0
    lease_retry_period_seconds: float = 5.0
    # Where we listen. Loopback only by default.
    listen_host: str = "127.0.0.1"
    xds_plaintext_port: int | None = None  # 15010, development only: off unless asked for
    xds_tls_port: int | None = 15012
    monitoring_port: int | None = 15014
    # The mesh graph page (/graph on the monitoring port) reads Istio's metrics from this
    # Prometheus; None: it scrapes the sidecars it serves.
    prometheus_url: str | None = None
    # The sidecar injection webhook (HTTPS, certificate from our CA), as istiod's 15017.
    injection_webhook_port: int | None = None
    injection_image: str = "controlplane/proxy:latest"  # runs `controlplane capture` and `agent`
    # The debug port stays on loopback when xDS listens on every address (None: listen_host).
    monitoring_host: str | None = None
    # A proxy without a credential gets nothing on the TLS port, as istiod refuses it; this
    # serves it there anyway (development only: it claims any namespace it likes). The
    # plaintext development port serves such proxies regardless, as Istio's 15010 does.
    xds_allow_anonymous: bool = False
    # What one xDS client may make the server hold or do: names, bytes per request, streams
    # per identity (per peer without one), new streams per second (Istio's
    # PILOT_MAX_REQUESTS_PER_SECOND), concurrent pushes (PILOT_PUSH_THROTTLE).
    xds_limits: XdsLimits = field(default_factory=XdsLimits)
    # Mesh.
    trust_domain: str = "cluster.local"
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX  # services are <name>.<ns>.svc.<domain_suffix>
    ca_dir: Path = field(default_factory=lambda: Path("certs"))
    workload_cert_ttl_seconds: float = 24 * 3600
    # CreateCertificate limits (token buckets). A proxy asks at start and then at half life
    # (12 h), so these are never hit in normal running; the bursts cover a whole Deployment
    # of one service account restarting at once. Per peer address the budget is checked
    # before the credential, so a flood of bad tokens costs little. At most
    # csr_rate_limit_max_tracked buckets of each kind are held (least recently used dropped).
    csr_per_identity_rate: float = 10.0  # per second, sustained
    csr_per_identity_burst: float = 200.0
    csr_per_peer_rate: float = 20.0
    csr_per_peer_burst: float = 200.0
    csr_rate_limit_max_tracked: int = 10_000
    # Refused requests are logged as one line per interval with counts, never one per request.
    refusal_log_interval_seconds: float = 10.0
    # Push debounce, as Istio's PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX.
    debounce_after_seconds: float = 0.1
    debounce_max_seconds: float = 10.0
    # How often the free C heap left by bursts (1,000 EDS ACKs read at once) is handed back
    # to the system when there is enough of it (server/heap.py); 0: never.
    heap_trim_interval_seconds: float = 0.5
    # Logging.
    log_level: str = "info"
    log_format: str = "text"
    # Istio's mesh config YAML (accessLogFile, extensionProviders, ...), or the istio ConfigMap.
    mesh_config_file: Path | None = None
    # JWKS the control plane fetches for RequestAuthentication jwksUri (istiod's resolver):
    # refreshed every PILOT_JWT_PUB_KEY_REFRESH_INTERVAL (20 min), sooner after a failure
    # (doubling up to the refresh interval); each fetch bounded in time and size, and the
    # number of locations fetched bounded too. A rule's own ``timeout`` may ask for up to 30 s.
    jwks_refresh_seconds: float = 20 * 60
    jwks_refresh_on_failure_seconds: float = 60.0
    jwks_fetch_timeout_seconds: float = 5.0
    jwks_max_bytes: int = 512 * 1024
    jwks_max_locations: int = 100
