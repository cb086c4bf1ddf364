"""The Kubernetes API as a source: one list+watch thread per collection.

Each collection feeds the store under its own source id (``kubernetes/Service``,
...), so a relist of one never touches another. Istio CRDs are tried version by
version (v1, then the beta/alpha versions older Istio releases serve); a CRD that
is not installed is a warning, looked for again from time to time; so are the Kubernetes
Gateway API's (GatewayClass, Gateway, HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, ReferenceGrant).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from kubernetes import client, config

from controlplane.sources.diagnostics import Diagnostic
from controlplane.sources.reflector import ApiResource, Reflector, ReflectorOptions
from controlplane.store import Store

log = logging.getLogger(__name__)

DEFAULT_OPTIONS = ReflectorOptions()


@dataclass(frozen=True, slots=True)
class WatchedKind:
    """What to watch for one input kind: candidate collections in order of preference."""

    name: str
    candidates: tuple[ApiResource, ...]
    optional: bool = False  # CRDs: absence is a warning


def _istio(kind: str, plural: str, group: str, versions: Sequence[str]) -> WatchedKind:
    return WatchedKind(
        kind, tuple(ApiResource(kind, f"{group}/{v}", plural) for v in versions), optional=True
    )


_NETWORKING = ("v1", "v1beta1", "v1alpha3")
_SECURITY = ("v1", "v1beta1")
_TELEMETRY = ("v1", "v1alpha1")
_GATEWAY_API = "gateway.networking.k8s.io"

DEFAULT_KINDS: tuple[WatchedKind, ...] = (
    WatchedKind("Namespace", (ApiResource("Namespace", "v1", "namespaces"),)),
    WatchedKind("Service", (ApiResource("Service", "v1", "services"),)),
    WatchedKind(
        "EndpointSlice",
        (
            ApiResource("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
            ApiResource("Endpoints", "v1", "endpoints"),
        ),
    ),
    WatchedKind("Pod", (ApiResource("Pod", "v1", "pods"),)),
    WatchedKind("Secret", (ApiResource("Secret", "v1", "secrets"),)),
    # The CAs a Gateway API Gateway's frontend validation names. Optional like the Gateway API
    # itself: an API server (or test double) not serving ConfigMaps leaves a warning, no more.
    WatchedKind("ConfigMap", (ApiResource("ConfigMap", "v1", "configmaps"),), optional=True),
    _istio("VirtualService", "virtualservices", "networking.istio.io", _NETWORKING),
    _istio("DestinationRule", "destinationrules", "networking.istio.io", _NETWORKING),
    _istio("Gateway", "gateways", "networking.istio.io", _NETWORKING),
    _istio("ServiceEntry", "serviceentries", "networking.istio.io", _NETWORKING),
    _istio("Sidecar", "sidecars", "networking.istio.io", _NETWORKING),
    _istio("WorkloadEntry", "workloadentries", "networking.istio.io", _NETWORKING),
    _istio("EnvoyFilter", "envoyfilters", "networking.istio.io", ("v1alpha3",)),
    _istio("PeerAuthentication", "peerauthentications", "security.istio.io", _SECURITY),
    _istio("AuthorizationPolicy", "authorizationpolicies", "security.istio.io", _SECURITY),
    _istio("RequestAuthentication", "requestauthentications", "security.istio.io", _SECURITY),
    _istio("Telemetry", "telemetries", "telemetry.istio.io", _TELEMETRY),
    # Kubernetes Gateway API: optional CRDs like Istio's. The Gateway API Gateway is stored as
    # KubernetesGateway (its document kind stays Gateway).
    _istio("GatewayClass", "gatewayclasses", _GATEWAY_API, ("v1", "v1beta1")),
    WatchedKind(
        "KubernetesGateway",
        tuple(ApiResource("Gateway", f"{_GATEWAY_API}/{v}", "gateways") for v in ("v1", "v1beta1")),
        optional=True,
    ),
    _istio("ListenerSet", "listenersets", _GATEWAY_API, ("v1",)),
    _istio("HTTPRoute", "httproutes", _GATEWAY_API, ("v1", "v1beta1")),
    _istio("GRPCRoute", "grpcroutes", _GATEWAY_API, ("v1",)),
    _istio("TLSRoute", "tlsroutes", _GATEWAY_API, ("v1", "v1alpha3", "v1alpha2")),
    _istio("TCPRoute", "tcproutes", _GATEWAY_API, ("v1", "v1alpha2")),
    _istio("ReferenceGrant", "referencegrants", _GATEWAY_API, ("v1", "v1beta1")),
    _istio("BackendTLSPolicy", "backendtlspolicies", _GATEWAY_API, ("v1", "v1alpha3")),
    _istio("XBackendTrafficPolicy", "xbackendtrafficpolicies", "gateway.networking.x-k8s.io", ("v1alpha1",)),
)


# Every watched kind keeps a watch open on the one client, each in its own thread, beside
# status, Lease and ConfigMap writes: urllib3's default pool (5 per CPU) is smaller than that,
# so it discarded connections and reopened them (a new TLS handshake each, on a cluster).
CONNECTION_POOL_SIZE = len(DEFAULT_KINDS) + 8


def api_client_from_config(
    kubeconfig: Path | str | None = None, context: str | None = None
) -> client.ApiClient:
    """An ApiClient from ``kubeconfig``, else in-cluster config, else ~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(context=context, client_configuration=configuration)
    configuration.connection_pool_maxsize = max(
        configuration.connection_pool_maxsize, CONNECTION_POOL_SIZE
    )
    return client.ApiClient(configuration)


class KubernetesSource:
    """Feeds ``store`` from a Kubernetes API server (list+watch, one thread per kind)."""

    def __init__(
        self,
        store: Store,
        api_client: client.ApiClient,
        *,
        kinds: Sequence[WatchedKind] = DEFAULT_KINDS,
        source_id: str = "kubernetes",
        options: ReflectorOptions = DEFAULT_OPTIONS,
        claim: Mapping[str, Callable[[dict[str, Any]], bool]] | None = None,
    ) -> None:
        """``claim``: by kind name, who takes the objects that are not input (see
        ``Reflector``)."""
        self.store = store
        self.api_client = api_client
        self.reflectors = [
            Reflector(
                store,
                api_client,
                kind.candidates,
                f"{source_id}/{kind.name}",
                optional=kind.optional,
                options=options,
                claim=(claim or {}).get(kind.name),
            )
            for kind in kinds
        ]

    def start(self) -> None:
        for reflector in self.reflectors:
            reflector.start()

    def stop(self) -> None:
        for reflector in self.reflectors:
            reflector._stop.set()
            reflector._interrupt()
        for reflector in self.reflectors:
            reflector.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Whether every collection finished its first list (or was found absent)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for reflector in self.reflectors:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not reflector.synced.wait(remaining):
                return False
        return True

    def served_versions(self, group: str) -> dict[str, str]:
        """Document kind -> the version the API server serves it at, for the collections of
        ``group`` found (``Gateway`` for the Gateway API Gateway, stored as KubernetesGateway)."""
        out = {}
        for reflector in self.reflectors:
            resource = reflector.resource
            if resource is not None and resource.api_version.startswith(group + "/"):
                out[resource.kind] = resource.api_version.removeprefix(group + "/")
        return out

    @property
    def missing(self) -> tuple[str, ...]:
        """Kinds the server does not serve (CRDs not installed)."""
        return tuple(r.source_id for r in self.reflectors if r.missing)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for r in self.reflectors for d in r.errors)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
