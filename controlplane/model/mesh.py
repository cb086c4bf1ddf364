"""The mesh-wide settings translation reads (``MeshConfig``), and how a user's Istio mesh config
document (``--mesh-config FILE``) sets them.

The document is the mesh YAML itself (``accessLogFile: /dev/stdout`` ...) or the ``istio``
ConfigMap that holds it under ``data.mesh``, as ``kubectl get cm istio -o yaml`` prints it.
Errors name the field path; unknown MeshConfig fields are ignored as istiod ignores what a
version does not know.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from controlplane.model.base import FieldError, Origin, ValidationError
from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX
from controlplane.model.mesh_config import (
    IstioMeshConfig,
    TelemetryDefaults,
    parse_mesh_config,
    telemetry_defaults,
)

log = logging.getLogger("controlplane.model")

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
    # Istio's trustDomainAliases: AuthorizationPolicy principals in these trust domains (or in
    # cluster.local) also match the same identity in every other one (trust domain migration).
    trust_domain_aliases: tuple[str, ...] = ()
    # Istio's domainSuffix: services are named <name>.<namespace>.svc.<domain_suffix>.
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
    root_namespace: str = "istio-system"
    outbound_traffic_policy: str = ALLOW_ANY  # or REGISTRY_ONLY
    default_retry: RetryDefaults | None = RetryDefaults()
    connect_timeout_seconds: float = 10.0
    # Istio's enableAutoMtls (on by default, as in Istio; see transport.apply_upstream_tls).
    enable_auto_mtls: bool = True
    # Istio's pathNormalization: NONE, BASE (the default), MERGE_SLASHES, DECODE_AND_MERGE_SLASHES.
    # Paths are normalized before routing and authorization, so `/./admin` meets a DENY on `/admin`.
    path_normalization: str = "BASE"
    # Where the sidecar reaches its own app when no Sidecar ingress says otherwise.
    inbound_app_address: str = "127.0.0.1"
    virtual_outbound_port: int = 15001
    virtual_inbound_port: int = 15006
    # Access logs, tracing and providers from Istio's MeshConfig (see translate/telemetry.py).
    telemetry: TelemetryDefaults = field(default_factory=TelemetryDefaults)
    # The OS trust bundle (PEM) the server found, for Istio's VERIFY_CERTIFICATE_AT_CLIENT (on
    # since Istio 1.21): DestinationRule SIMPLE or MUTUAL TLS with neither caCertificates nor
    # credentialName verifies the server against it. Empty: no bundle, no such verification.
    system_ca_bundle: bytes = b""


def parse_document(document: Any, origin: Origin | None = None) -> IstioMeshConfig:
    """A mesh document (or an ``istio`` ConfigMap) -> IstioMeshConfig; ValidationError on errors."""
    path_prefix = ""
    if isinstance(document, Mapping) and document.get("kind") == "ConfigMap":
        text = (document.get("data") or {}).get("mesh")
        if not isinstance(text, str):
            raise ValidationError(
                [FieldError("data.mesh", "Required value: the mesh config YAML")], origin=origin
            )
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValidationError(
                [FieldError("data.mesh", f"not valid YAML: {exc}")], origin=origin
            ) from exc
        path_prefix = "data.mesh."
    errors: list[FieldError] = []
    mesh = parse_mesh_config(document, errors)
    errors = [dataclasses.replace(e, path=path_prefix + e.path) for e in errors]
    hard = [e for e in errors if e.severity == "error"]
    if hard or mesh is None:
        raise ValidationError(hard or errors, origin=origin)
    for warning in errors:
        log.warning("mesh config %s: %s", origin or "", warning)
    return mesh


def apply_mesh_config(base: MeshConfig, mesh: IstioMeshConfig) -> MeshConfig:
    """``base`` with what the document sets: telemetry always, the rest only where given.

    trustDomain is parsed but not applied: the CA takes it from Settings (--trust-domain),
    and the CA and the translator must agree."""
    changes: dict[str, Any] = {"telemetry": telemetry_defaults(mesh)}
    if mesh.root_namespace:
        changes["root_namespace"] = mesh.root_namespace
    if mesh.trust_domain_aliases:
        changes["trust_domain_aliases"] = mesh.trust_domain_aliases
    if mesh.outbound_traffic_policy is not None:
        changes["outbound_traffic_policy"] = mesh.outbound_traffic_policy.mode
    if mesh.connect_timeout is not None:
        changes["connect_timeout_seconds"] = mesh.connect_timeout.total_seconds()
    if mesh.enable_auto_mtls is not None:
        changes["enable_auto_mtls"] = mesh.enable_auto_mtls
    if mesh.path_normalization is not None:
        mode = mesh.path_normalization.normalization
        changes["path_normalization"] = "BASE" if mode == "DEFAULT" else mode
    return dataclasses.replace(base, **changes)


def mesh_config_from_yaml(text: str, base: MeshConfig | None = None) -> MeshConfig:
    """Convenience for tests and tools: YAML text -> MeshConfig."""
    return apply_mesh_config(base or MeshConfig(), parse_document(yaml.safe_load(text)))
