"""AuthorizationPolicy CUSTOM on a sidecar's inbound chains: an RBAC filter whose shadow rules
mark the requests the CUSTOM rules select, then Envoy's ext_authz filter, enabled only for
them; both after jwt_authn and before the DENY and ALLOW RBAC filters (Istio's order).

HTTP chains get the HTTP filters (any provider); TCP chains the network ones (gRPC providers
only). A bad provider leaves one enforced DENY RBAC filter instead. What goes in them is
``translate.authz.ext_authz``'s, computed once per namespace and labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.translate.authz.ext_authz import (
    HTTP_RBAC_FILTER,
    NETWORK_RBAC_FILTER,
    ext_authz_clusters,
    workload_custom,
)
from controlplane.translate.filters.base import (
    EXT_AUTHZ,
    POLICY_DIRECTIONS,
    FilterSite,
    HttpFilter,
    NetworkFilter,
)
from controlplane.translate.index.context import PushContext
from controlplane.translate.pb import any_of
from controlplane.translate.proxy import Proxy

EXT_AUTHZ_HTTP_FILTER = "envoy.filters.http.ext_authz"
EXT_AUTHZ_NETWORK_FILTER = "envoy.filters.network.ext_authz"


class CustomRbac(HttpFilter):
    """The CUSTOM rules: shadow rules that mark requests for ext_authz (or DENY rules)."""

    name: ClassVar[str] = HTTP_RBAC_FILTER
    position = EXT_AUTHZ

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        if site.direction not in POLICY_DIRECTIONS or not site.http:
            return None
        custom = workload_custom(site.ctx, site.proxy, tcp=False)
        return self.entry(custom.rbac) if custom is not None else None


class ExtAuthz(HttpFilter):
    name: ClassVar[str] = EXT_AUTHZ_HTTP_FILTER
    position = EXT_AUTHZ + 1

    def clusters(
        self, ctx: PushContext, proxy: Proxy, existing: Mapping[str, cluster_pb2.Cluster]
    ) -> list[cluster_pb2.Cluster]:
        """The authorizers of the workload's CUSTOM policies (HTTP and TCP) it cannot reach yet."""
        return ext_authz_clusters(ctx, proxy, existing)

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        if site.direction not in POLICY_DIRECTIONS or not site.http:
            return None
        custom = workload_custom(site.ctx, site.proxy, tcp=False)
        return (
            self.entry(custom.ext_authz)
            if custom is not None and custom.ext_authz is not None
            else None
        )


class CustomNetworkRbac(NetworkFilter):
    name: ClassVar[str] = NETWORK_RBAC_FILTER
    position = EXT_AUTHZ

    def network_filter(self, site: FilterSite) -> lc.Filter | None:
        if site.direction not in POLICY_DIRECTIONS or site.http:
            return None
        custom = workload_custom(site.ctx, site.proxy, tcp=True)
        return (
            lc.Filter(name=self.name, typed_config=any_of(custom.rbac))
            if custom is not None
            else None
        )


class NetworkExtAuthz(NetworkFilter):
    name: ClassVar[str] = EXT_AUTHZ_NETWORK_FILTER
    position = EXT_AUTHZ + 1

    def network_filter(self, site: FilterSite) -> lc.Filter | None:
        if site.direction not in POLICY_DIRECTIONS or site.http:
            return None
        custom = workload_custom(site.ctx, site.proxy, tcp=True)
        if custom is None or custom.ext_authz is None:
            return None
        return lc.Filter(name=self.name, typed_config=any_of(custom.ext_authz))


FILTERS = (CustomRbac(), ExtAuthz(), CustomNetworkRbac(), NetworkExtAuthz())
