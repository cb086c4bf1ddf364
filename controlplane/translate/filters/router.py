"""The router: the terminal HTTP filter of every connection manager."""

from __future__ import annotations

from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.translate.filters.base import ROUTER, FilterSite, HttpFilter

ROUTER_FILTER = "envoy.filters.http.router"


class Router(HttpFilter):
    name = ROUTER_FILTER
    position = ROUTER

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter:
        return self.entry(router_pb2.Router())


FILTER = Router()
