"""What a filter module declares: its place in the chain and what it adds.

A module in this package that defines ``FILTER`` (an ``HttpFilter`` or a ``NetworkFilter``)
is registered by the package (see ``__init__``). ``position`` orders the chain, lowest
first; the constants below keep Istio's order: authentication, authorization, traffic
features, telemetry, and the terminal filter last.

A filter whose config changes with policies (RBAC, jwt_authn) puts only a reference in the
chain and has its config served over ECDS: ``self.discovered(site, "rbac-deny", config)``
instead of ``self.entry(config)``. The reference (the resource name, ``names.extension_config``)
never depends on the config, so a policy change updates one ``TypedExtensionConfig`` and never
the listener: Envoy drains no connection and the new config applies to the next request on
every connection. The builders collect the configs through the site (``ExtensionConfigs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2, extension_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf.message import Message

from controlplane.model.virtual_service import HTTPRoute
from controlplane.translate import names
from controlplane.translate.errors import TranslationError
from controlplane.translate.pb import ads_source, any_of

if TYPE_CHECKING:
    from controlplane.translate.index.context import PushContext
    from controlplane.translate.proxy import Proxy

# Where a chain is built.
INBOUND = "inbound"  # a sidecar's inbound listeners (virtualInbound chains, bound inbound)
OUTBOUND = "outbound"  # a sidecar's outbound listeners
GATEWAY = "gateway"  # a router's listeners
# Where a workload's own policies (AuthorizationPolicy, RequestAuthentication) apply: a sidecar's
# inbound chains, and a gateway's listeners (Istio applies those selecting a gateway's pods there).
POLICY_DIRECTIONS = frozenset({INBOUND, GATEWAY})

# Positions, Istio's order.
PEER_METADATA = 50  # Istio's metadata exchange: first, so that every reply carries the peer's facts
JWT_AUTHN = 100
EXT_AUTHZ = 200  # AuthorizationPolicy CUSTOM: before DENY and ALLOW
RBAC = 300
LOCAL_RATELIMIT = 400
RATELIMIT = 450
FAULT = 500
CORS = 600
STATS = 900
ROUTER = 1000  # terminal


class ExtensionConfigs:
    """The ECDS resources the chains of one proxy refer to, by name (what the builders serve
    beside the listeners). One name, one config: a second, different config is a bug."""

    def __init__(self) -> None:
        self._configs: dict[str, Message] = {}

    def add(self, name: str, config: Message) -> None:
        known = self._configs.setdefault(name, config)
        if known is not config and known != config:
            raise TranslationError(f"extension config {name!r}: two configs for one proxy")

    def resources(self) -> dict[str, extension_pb2.TypedExtensionConfig]:
        return {
            name: extension_pb2.TypedExtensionConfig(name=name, typed_config=any_of(config))
            for name, config in sorted(self._configs.items())
        }


def extension_config_source(config: Message) -> config_source_pb2.ExtensionConfigSource:
    """Where a filter finds its config: ECDS on the ADS stream, that config type only.

    No ``default_config`` and no ``apply_default_config_without_warming``: a listener that
    names a config it does not hold yet warms (keeps serving with the old listener, or not at
    all) until the config arrives, so a chain never runs without its policy. If it never
    arrives (initial fetch timeout) or is removed, Envoy disables the filter, and a chain with
    a disabled filter refuses every request (500) or connection: fail closed, never open."""
    return config_source_pb2.ExtensionConfigSource(
        config_source=ads_source(),
        type_urls=["type.googleapis.com/" + config.DESCRIPTOR.full_name],
    )


@dataclass(frozen=True, slots=True)
class FilterSite:
    """One chain being built: for which proxy, in which direction, on which port (0: any port,
    the inbound passthrough chain), and whether it is an HTTP chain (the connection manager
    follows the network filters) or a TCP one. ``extensions`` collects the configs the chain's
    filters have served over ECDS."""

    ctx: PushContext
    proxy: Proxy
    direction: str
    port: int
    http: bool = False
    extensions: ExtensionConfigs | None = field(default=None, compare=False)

    def discover(self, filter_name: str, config: Message) -> str:
        """Record ``config`` as the ECDS resource of ``filter_name`` on this proxy; its name."""
        if self.extensions is None:
            raise TranslationError(f"{filter_name}: no ExtensionConfigs given to this chain")
        name = names.extension_config(self.proxy.namespace, filter_name)
        self.extensions.add(name, config)
        return name


class _Filter:
    """What every filter may add besides its place in a chain."""

    name: ClassVar[str]
    position: ClassVar[int]

    def clusters(
        self, ctx: PushContext, proxy: Proxy, existing: Mapping[str, cluster_pb2.Cluster]
    ) -> list[cluster_pb2.Cluster]:
        """Clusters the filter sends to that the proxy does not have in ``existing``."""
        return []

    def access_logs(self, site: FilterSite) -> list[accesslog_pb2.AccessLog]:
        """Access loggers for the chain's connection manager (HTTP) or tcp_proxy (TCP), e.g.
        the stats access logger that makes Istio's metrics."""
        return []


class HttpFilter(_Filter):
    """An HTTP filter of the connection manager. Override what the filter adds."""

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        """The filter on this chain, or None where it has nothing to do."""
        return None

    def per_route(self, http: HTTPRoute) -> Message | None:
        """Per-route config (``typed_per_filter_config``) for a VirtualService http route."""
        return None

    def entry(self, config: Message) -> hcm_pb2.HttpFilter:
        return hcm_pb2.HttpFilter(name=self.name, typed_config=any_of(config))

    def discovered(self, site: FilterSite, filter_name: str, config: Message) -> hcm_pb2.HttpFilter:
        """This filter with ``config`` served over ECDS as ``<namespace>.<filter_name>``; the
        chain holds only that name."""
        name = site.discover(filter_name, config)
        return hcm_pb2.HttpFilter(name=name, config_discovery=extension_config_source(config))


class NetworkFilter(_Filter):
    """A network filter placed before a chain's terminal filter (tcp_proxy or the HCM)."""

    def network_filter(self, site: FilterSite) -> lc.Filter | None:
        return None

    def discovered(self, site: FilterSite, filter_name: str, config: Message) -> lc.Filter:
        """This filter with ``config`` served over ECDS (see ``HttpFilter.discovered``). A new
        config applies to connections accepted after it; open ones keep the decision they got."""
        name = site.discover(filter_name, config)
        return lc.Filter(name=name, config_discovery=extension_config_source(config))


def apply_per_route(filters: tuple[HttpFilter, ...], http: HTTPRoute, route: rc.Route) -> None:
    for f in filters:
        config = f.per_route(http)
        if config is not None:
            route.typed_per_filter_config[f.name].CopyFrom(any_of(config))
