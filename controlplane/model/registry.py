"""Which kinds the model knows, under which apiVersions, and how each is parsed and validated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controlplane.model import (
    destination_rule,
    envoy_filter,
    gateway,
    gateway_api,
    kubernetes,
    security,
    service_entry,
    sidecar,
    telemetry,
    validate_destination_rule,
    validate_envoy_filter,
    validate_gateway,
    validate_gateway_api,
    validate_kubernetes,
    validate_security,
    validate_service_entry,
    validate_sidecar,
    validate_telemetry,
    validate_virtual_service,
    virtual_service,
)
from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import (
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
)

Validator = Callable[[Resource, list[FieldError]], None]


@dataclass(frozen=True, slots=True)
class KindInfo:
    """One supported kind: its API group, accepted versions and model class.

    ``kind`` is the store's kind (the model's ``KIND``); ``document_kind`` is the ``kind:`` of
    documents when it differs (the Gateway API Gateway is stored as ``KubernetesGateway``).
    """

    group: str  # "" for the Kubernetes core group
    kind: str
    versions: tuple[str, ...]
    cls: type[Resource]
    validate: Validator | None = None
    namespaced: bool = True
    has_spec: bool = True  # Istio kinds: everything under a required ``spec``
    name_check: Callable[[str], str] = check_dns1123_subdomain
    document_kind: str = ""

    @property
    def doc_kind(self) -> str:
        return self.document_kind or self.kind

    @property
    def api_versions(self) -> tuple[str, ...]:
        return tuple(f"{self.group}/{v}" if self.group else v for v in self.versions)


_NETWORKING = ("v1", "v1beta1", "v1alpha3")
_SECURITY = ("v1", "v1beta1")
_TELEMETRY = ("v1", "v1alpha1")
_NET = "networking.istio.io"
_SEC = "security.istio.io"
_GW = gateway_api.GROUP
_GW_V1 = ("v1", "v1beta1")
_GW_L4 = ("v1", "v1alpha3", "v1alpha2")  # TLSRoute and TCPRoute: v1alpha2 in most releases

KINDS: tuple[KindInfo, ...] = (
    # Kubernetes
    KindInfo(
        "",
        "Service",
        ("v1",),
        kubernetes.Service,
        validate_kubernetes.validate_service,
        has_spec=False,
        name_check=check_dns1035_label,
    ),
    KindInfo(
        "discovery.k8s.io",
        "EndpointSlice",
        ("v1",),
        kubernetes.EndpointSlice,
        validate_kubernetes.validate_endpoint_slice,
        has_spec=False,
    ),
    KindInfo(
        "",
        "Endpoints",
        ("v1",),
        kubernetes.Endpoints,
        validate_kubernetes.validate_endpoints,
        has_spec=False,
    ),
    KindInfo("", "Pod", ("v1",), kubernetes.Pod, validate_kubernetes.validate_pod, has_spec=False),
    KindInfo(
        "",
        "Namespace",
        ("v1",),
        kubernetes.Namespace,
        None,
        namespaced=False,
        has_spec=False,
        name_check=check_dns1123_label,
    ),
    KindInfo("", "Secret", ("v1",), kubernetes.Secret, None, has_spec=False),
    KindInfo("", "ConfigMap", ("v1",), kubernetes.ConfigMap, None, has_spec=False),
    KindInfo("", "ServiceAccount", ("v1",), kubernetes.ServiceAccount, None, has_spec=False),
    # Istio networking
    KindInfo(
        _NET,
        "VirtualService",
        _NETWORKING,
        virtual_service.VirtualService,
        validate_virtual_service.validate_virtual_service,
    ),
    KindInfo(
        _NET,
        "DestinationRule",
        _NETWORKING,
        destination_rule.DestinationRule,
        validate_destination_rule.validate_destination_rule,
    ),
    KindInfo(_NET, "Gateway", _NETWORKING, gateway.Gateway, validate_gateway.validate_gateway),
    KindInfo(
        _NET,
        "ServiceEntry",
        _NETWORKING,
        service_entry.ServiceEntry,
        validate_service_entry.validate_service_entry,
    ),
    KindInfo(
        _NET,
        "WorkloadEntry",
        _NETWORKING,
        service_entry.WorkloadEntry,
        validate_service_entry.validate_workload_entry,
    ),
    KindInfo(_NET, "Sidecar", _NETWORKING, sidecar.Sidecar, validate_sidecar.validate_sidecar),
    KindInfo(
        _NET,
        "EnvoyFilter",
        ("v1alpha3",),
        envoy_filter.EnvoyFilter,
        validate_envoy_filter.validate_envoy_filter,
    ),
    # Istio security and telemetry
    KindInfo(
        _SEC,
        "PeerAuthentication",
        _SECURITY,
        security.PeerAuthentication,
        validate_security.validate_peer_authentication,
    ),
    KindInfo(
        _SEC,
        "AuthorizationPolicy",
        _SECURITY,
        security.AuthorizationPolicy,
        validate_security.validate_authorization_policy,
    ),
    KindInfo(
        _SEC,
        "RequestAuthentication",
        _SECURITY,
        security.RequestAuthentication,
        validate_security.validate_request_authentication,
    ),
    KindInfo(
        "telemetry.istio.io",
        "Telemetry",
        _TELEMETRY,
        telemetry.Telemetry,
        validate_telemetry.validate_telemetry,
    ),
    # Kubernetes Gateway API
    KindInfo(
        _GW,
        "GatewayClass",
        _GW_V1,
        gateway_api.GatewayClass,
        validate_gateway_api.validate_gateway_class,
        namespaced=False,
    ),
    KindInfo(
        _GW,
        "KubernetesGateway",
        _GW_V1,
        gateway_api.KubernetesGateway,
        validate_gateway_api.validate_kubernetes_gateway,
        document_kind="Gateway",
    ),
    KindInfo(
        _GW, "ListenerSet", ("v1",), gateway_api.ListenerSet, validate_gateway_api.validate_listener_set
    ),
    KindInfo(
        _GW, "BackendTLSPolicy", ("v1", "v1alpha3"), gateway_api.BackendTLSPolicy,
        validate_gateway_api.validate_backend_tls_policy,
    ),
    KindInfo(
        gateway_api.X_GROUP, "XBackendTrafficPolicy", ("v1alpha1",), gateway_api.XBackendTrafficPolicy,
        validate_gateway_api.validate_x_backend_traffic_policy,
    ),
    KindInfo(
        _GW, "HTTPRoute", _GW_V1, gateway_api.HTTPRoute, validate_gateway_api.validate_http_route
    ),
    KindInfo(
        _GW, "GRPCRoute", _GW_V1, gateway_api.GRPCRoute, validate_gateway_api.validate_grpc_route
    ),
    KindInfo(_GW, "TLSRoute", _GW_L4, gateway_api.TLSRoute, validate_gateway_api.validate_tls_route),
    KindInfo(_GW, "TCPRoute", _GW_L4, gateway_api.TCPRoute, validate_gateway_api.validate_tcp_route),
    KindInfo(
        _GW,
        "ReferenceGrant",
        ("v1", "v1beta1"),
        gateway_api.ReferenceGrant,
        validate_gateway_api.validate_reference_grant,
    ),
)

# Documents are looked up by (group, document kind); the store and its users by store kind.
_BY_GROUP_KIND: dict[tuple[str, str], KindInfo] = {(k.group, k.doc_kind): k for k in KINDS}
BY_KIND: dict[str, KindInfo] = {k.kind: k for k in KINDS}


def split_api_version(api_version: str) -> tuple[str, str]:
    """``networking.istio.io/v1`` -> (``networking.istio.io``, ``v1``); ``v1`` -> ("", ``v1``)."""
    group, slash, version = api_version.rpartition("/")
    return (group, version) if slash else ("", api_version)


def lookup(api_version: str, kind: str) -> KindInfo | None:
    """The kind's info when its group and kind are supported (the version is checked by parse)."""
    group, _ = split_api_version(api_version)
    return _BY_GROUP_KIND.get((group, kind))


def is_supported(api_version: str, kind: str) -> bool:
    """True when the model knows this group and kind; ``parse`` raises UnsupportedKind otherwise.

    A known kind under a version the model does not accept is a validation error, not a skip.
    """
    return lookup(api_version, kind) is not None


def supported_kinds() -> dict[tuple[str, str], tuple[str, ...]]:
    """{(group, document kind): versions} for every supported kind."""
    return {(k.group, k.doc_kind): k.versions for k in KINDS}
