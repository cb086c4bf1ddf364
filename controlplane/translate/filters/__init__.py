"""The filter registry: every HTTP and network filter is one module in this package.

A module that defines ``FILTER`` (or ``FILTERS``, a tuple, where one feature puts several
filters in a chain) is found at import and placed by its ``position`` (see ``base``). Adding
a filter (RBAC, JWT, ext_authz, stats, rate limits, ...) is adding a file; no chain is
written out by hand anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.model.virtual_service import HTTPRoute
from controlplane.translate.filters.base import (
    FilterSite,
    HttpFilter,
    NetworkFilter,
    apply_per_route,
)
from controlplane.translate.index.context import PushContext
from controlplane.translate.proxy import Proxy


def _discover() -> tuple[tuple[HttpFilter, ...], tuple[NetworkFilter, ...]]:
    http: list[HttpFilter] = []
    network: list[NetworkFilter] = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for found in (getattr(module, "FILTER", None), *getattr(module, "FILTERS", ())):
            if isinstance(found, HttpFilter):
                http.append(found)
            elif isinstance(found, NetworkFilter):
                network.append(found)
    return (
        tuple(sorted(http, key=lambda f: (f.position, f.name))),
        tuple(sorted(network, key=lambda f: (f.position, f.name))),
    )


HTTP_FILTERS, NETWORK_FILTERS = _discover()


def http_filter_chain(site: FilterSite) -> list[hcm_pb2.HttpFilter]:
    """The HTTP filters of one connection manager, in registry order."""
    return [f for f in (m.http_filter(site) for m in HTTP_FILTERS) if f is not None]


def network_filter_chain(site: FilterSite) -> list[lc.Filter]:
    """The network filters that go before a chain's terminal filter."""
    return [f for f in (m.network_filter(site) for m in NETWORK_FILTERS) if f is not None]


def filter_access_logs(site: FilterSite) -> list[accesslog_pb2.AccessLog]:
    """The access loggers the registered filters put on one chain, in registry order."""
    return [log for m in (*HTTP_FILTERS, *NETWORK_FILTERS) for log in m.access_logs(site)]


def filter_clusters(
    ctx: PushContext, proxy: Proxy, existing: Mapping[str, cluster_pb2.Cluster]
) -> list[cluster_pb2.Cluster]:
    """Clusters the registered filters send to that ``existing`` lacks (e.g. an authorizer)."""
    out: dict[str, cluster_pb2.Cluster] = {}
    for module in (*HTTP_FILTERS, *NETWORK_FILTERS):
        for c in module.clusters(ctx, proxy, {**existing, **out}):
            out.setdefault(c.name, c)
    return list(out.values())


def per_route_configs(http: HTTPRoute, route: rc.Route) -> None:
    """Every filter's per-route config for a VirtualService http route."""
    apply_per_route(HTTP_FILTERS, http, route)


__all__ = [
    "HTTP_FILTERS",
    "NETWORK_FILTERS",
    "FilterSite",
    "filter_access_logs",
    "filter_clusters",
    "http_filter_chain",
    "network_filter_chain",
    "per_route_configs",
]
