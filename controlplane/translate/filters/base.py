"""What a filter module declares: its place in the chain and what it adds.

A module in this package that defines ``FILTER`` (an ``HttpFilter`` or a ``NetworkFilter``)
is registered by the package (see ``__init__``). ``position`` orders the chain, lowest
first; the constants below keep Istio's order: authentication, authorization, traffic
features, telemetry, and the terminal filter last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf.message import Message

from controlplane.model.virtual_service import HTTPRoute
from controlplane.translate.pb import any_of

if TYPE_CHECKING:
    from controlplane.translate.index.context import PushContext
    from controlplane.translate.proxy import Proxy

# Where a chain is built.
INBOUND = "inbound"  # a sidecar's inbound listeners (virtualInbound chains, bound inbound)
OUTBOUND = "outbound"  # a sidecar's outbound listeners
GATEWAY = "gateway"  # a router's listeners

# Positions, Istio's order.
JWT_AUTHN = 100
EXT_AUTHZ = 200  # AuthorizationPolicy CUSTOM: before DENY and ALLOW
RBAC = 300
LOCAL_RATELIMIT = 400
RATELIMIT = 450
FAULT = 500
CORS = 600
STATS = 900
ROUTER = 1000  # terminal


@dataclass(frozen=True, slots=True)
class FilterSite:
    """One chain being built: for which proxy, in which direction, on which port (0: any port,
    the inbound passthrough chain), and whether it is an HTTP chain (the connection manager
    follows the network filters) or a TCP one."""

    ctx: PushContext
    proxy: Proxy
    direction: str
    port: int
    http: bool = False


class HttpFilter:
    """An HTTP filter of the connection manager. Override what the filter adds."""

    name: ClassVar[str]
    position: ClassVar[int]

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        """The filter on this chain, or None where it has nothing to do."""
        return None

    def per_route(self, http: HTTPRoute) -> Message | None:
        """Per-route config (``typed_per_filter_config``) for a VirtualService http route."""
        return None

    def entry(self, config: Message) -> hcm_pb2.HttpFilter:
        return hcm_pb2.HttpFilter(name=self.name, typed_config=any_of(config))


class NetworkFilter:
    """A network filter placed before a chain's terminal filter (tcp_proxy or the HCM)."""

    name: ClassVar[str]
    position: ClassVar[int]

    def network_filter(self, site: FilterSite) -> lc.Filter | None:
        return None


def apply_per_route(filters: tuple[HttpFilter, ...], http: HTTPRoute, route: rc.Route) -> None:
    for f in filters:
        config = f.per_route(http)
        if config is not None:
            route.typed_per_filter_config[f.name].CopyFrom(any_of(config))
