"""The Gateway API conversion's entry point: inputs -> Istio Gateways, VirtualServices and
the status Istio would write on every Gateway API object (Istio's convertResources)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from controlplane.model.destination_rule import DestinationRule
from controlplane.model.gateway import Gateway
from controlplane.model.gateway_api import AnyRoute, GRPCRoute, HTTPRoute, TCPRoute, TLSRoute
from controlplane.model.virtual_service import VirtualService
from controlplane.translate.credentials import CA_SUFFIX
from controlplane.translate.gateway_api.backend_rules import backend_ca_credentials
from controlplane.translate.gateway_api.backend_rules import (
    destination_rules as backend_destination_rules,
)
from controlplane.translate.gateway_api.backend_tls import convert_backend_tls_policies
from controlplane.translate.gateway_api.backend_traffic import convert_backend_traffic_policies
from controlplane.translate.gateway_api.gateways import convert_gateways, finish_gateways
from controlplane.translate.gateway_api.http import RouteContext
from controlplane.translate.gateway_api.inputs import ConversionInputs
from controlplane.translate.gateway_api.listener_sets import convert_listener_sets
from controlplane.translate.gateway_api.references import ReferenceGrants, build_reference_grants
from controlplane.translate.gateway_api.routes import (
    RouteConversion,
    convert_http_like,
    convert_l4,
    merge_http,
)
from controlplane.translate.gateway_api.status import ObjectStatus
from controlplane.translate.gateway_api.tls import CONFIG_MAP_PREFIX, CREDENTIAL_PREFIX

# The order Istio lists statuses in (then namespace, name).
_KIND_ORDER = {"GatewayClass": 0, "Gateway": 1, "ListenerSet": 2, "HTTPRoute": 3, "GRPCRoute": 4, "TLSRoute": 5,
               "TCPRoute": 6, "BackendTLSPolicy": 7,
               "XBackendTrafficPolicy": 8}


@dataclass(frozen=True, slots=True)
class ConvertedConfig:
    """Istio config derived from the Gateway API (in memory only, never stored) and status."""

    gateways: tuple[Gateway, ...] = ()
    virtual_services: tuple[VirtualService, ...] = ()
    # from BackendTLSPolicies: merged under user-written rules (index/routing.py)
    destination_rules: tuple[DestinationRule, ...] = ()
    # the ``configmap://<ns>/<name>`` CAs those rules verify backends with
    backend_ca_credentials: frozenset[str] = frozenset()
    statuses: tuple[ObjectStatus, ...] = ()
    grants: ReferenceGrants = field(default_factory=ReferenceGrants)
    # gateway namespace -> SDS names its attached ListenerSets' listeners use (already checked
    # against the ListenerSet's namespace and grants)
    listener_set_credentials: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def gateway_secret(self, resource: str, proxy_namespace: str) -> tuple[str, str] | None:
        """The Secret (namespace, name) of a ``kubernetes-gateway://<ns>/<name>`` credential a
        router of ``proxy_namespace`` may read: its own namespace's, one a ReferenceGrant
        opens to Gateways there (Istio's SecretAllowed), or one a ListenerSet attached to a
        Gateway there uses; None otherwise."""
        return self._readable(resource, CREDENTIAL_PREFIX, "Secret", proxy_namespace)

    def gateway_config_map(self, resource: str, proxy_namespace: str) -> tuple[str, str] | None:
        """The ConfigMap (namespace, name) of a ``configmap://<ns>/<name>-cacert`` CA (a
        Gateway's frontend validation) a router of ``proxy_namespace`` may read; None otherwise."""
        found = self._readable(resource, CONFIG_MAP_PREFIX, "ConfigMap", proxy_namespace)
        return None if found is None else (found[0], found[1].removesuffix(CA_SUFFIX))

    def backend_config_map(self, resource: str) -> tuple[str, str] | None:
        """The ConfigMap (namespace, name) of a ``configmap://<ns>/<name>-cacert`` CA that a
        BackendTLSPolicy's rule verifies backends with; any proxy calling them may read it (a
        CA is public). None for any other name: a user-written rule cannot name a ConfigMap."""
        if not resource.endswith(CA_SUFFIX) or resource.removesuffix(CA_SUFFIX) not in self.backend_ca_credentials:
            return None
        namespace, _, name = resource.removeprefix(CONFIG_MAP_PREFIX).removesuffix(CA_SUFFIX).partition("/")
        return namespace, name

    def _readable(self, resource: str, prefix: str, kind: str, proxy_namespace: str) -> tuple[str, str] | None:
        namespace, slash, name = resource.removeprefix(prefix).partition("/")
        if not resource.startswith(prefix) or not slash:
            return None
        # A grant names the object, not the CA role its SDS name adds.
        granted = name.removesuffix(CA_SUFFIX)
        if (namespace == proxy_namespace or self.grants.allows("Gateway", proxy_namespace, kind, namespace, granted)
                or resource in self.listener_set_credentials.get(proxy_namespace, ())):
            return namespace, name
        return None

    def status_of(self, kind: str, namespace: str, name: str) -> ObjectStatus | None:
        return next(
            (s for s in self.statuses if (s.kind, s.namespace, s.name) == (kind, namespace, name)), None
        )


EMPTY = ConvertedConfig()


def convert(inputs: ConversionInputs) -> ConvertedConfig:
    if inputs.empty and not inputs.classes:
        return EMPTY
    grants = build_reference_grants(inputs.grants)
    gateways = convert_gateways(inputs, grants)
    convert_listener_sets(inputs, grants, gateways)
    finish_gateways(gateways, inputs)
    ctx = RouteContext(inputs, grants)
    routes = RouteConversion()
    http_like: list[HTTPRoute | GRPCRoute] = [*inputs.http_routes, *inputs.grpc_routes]
    for http in http_like:
        convert_http_like(http, ctx, gateways.parents, routes)
    merge_http(routes)
    l4_routes: list[TLSRoute | TCPRoute] = [*inputs.tls_routes, *inputs.tcp_routes]
    for l4 in l4_routes:
        convert_l4(l4, ctx, gateways.parents, routes)
    statuses = list(gateways.class_statuses)
    for (_, ns, name), status in gateways.statuses.items():
        listeners = tuple(
            replace(l, attached_routes=len(routes.attachments.get((status.kind, ns, name, l.name), ())))
            for l in status.listeners
        )
        statuses.append(replace(status, listeners=listeners))
    statuses += routes.statuses
    all_routes: list[AnyRoute] = [*http_like, *l4_routes]
    tls_parts, tls_statuses = convert_backend_tls_policies(inputs, gateways, all_routes)
    traffic_parts, traffic_statuses = convert_backend_traffic_policies(inputs)
    destination_rules = backend_destination_rules([*tls_parts, *traffic_parts], inputs)
    statuses += tls_statuses + traffic_statuses
    statuses.sort(key=lambda s: (_KIND_ORDER.get(s.kind, 9), s.namespace, s.name))
    return ConvertedConfig(
        gateways=tuple(sorted(gateways.gateways, key=lambda g: (g.meta.namespace, g.meta.name))),
        virtual_services=tuple(sorted(routes.virtual_services, key=lambda v: (v.meta.namespace, v.meta.name))),
        destination_rules=tuple(destination_rules),
        backend_ca_credentials=backend_ca_credentials(destination_rules),
        statuses=tuple(statuses),
        grants=grants,
        listener_set_credentials={ns: frozenset(names) for ns, names in gateways.listener_set_credentials.items()},
    )
