"""Mesh-wide settings the translator needs (Istio's MeshConfig, the parts we honour)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controlplane.model.mesh_config import TelemetryDefaults

ALLOW_ANY = "ALLOW_ANY"
REGISTRY_ONLY = "REGISTRY_ONLY"


@dataclass(frozen=True, slots=True)
class RetryDefaults:
    """Istio's default route retry policy, applied when a VirtualService sets none."""

    attempts: int = 2
    retry_on: str = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    host_selection_retry_max_attempts: int = 5


@dataclass(frozen=True, slots=True)
class MeshConfig:
    trust_domain: str = "cluster.local"
    # Services are named <name>.<namespace>.svc.<domain_suffix>.
    domain_suffix: str = "cluster.local"
    root_namespace: str = "istio-system"
    outbound_traffic_policy: str = ALLOW_ANY  # or REGISTRY_ONLY
    default_retry: RetryDefaults | None = RetryDefaults()
    connect_timeout_seconds: float = 10.0
    # Istio's enableAutoMtls (on by default, as in Istio; see transport.apply_upstream_tls).
    enable_auto_mtls: bool = True
    # Where the sidecar reaches its own app when no Sidecar ingress says otherwise.
    inbound_app_address: str = "127.0.0.1"
    virtual_outbound_port: int = 15001
    virtual_inbound_port: int = 15006
    # Access logs, tracing and providers from Istio's MeshConfig (see translate/telemetry.py).
    telemetry: TelemetryDefaults = field(default_factory=TelemetryDefaults)

    @staticmethod
    def from_settings(settings: Any, **overrides: Any) -> MeshConfig:
        """From controlplane.settings.Settings, whose ``domain_suffix`` is ``svc.cluster.local``
        (Istio's domainSuffix, kept here, is ``cluster.local``)."""
        suffix = str(getattr(settings, "domain_suffix", "svc.cluster.local")).removeprefix("svc.")
        return MeshConfig(
            trust_domain=getattr(settings, "trust_domain", "cluster.local"), domain_suffix=suffix, **overrides
        )
