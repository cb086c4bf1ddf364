"""AuthorizationPolicy on a sidecar's inbound TCP chains (and the inbound passthrough chain):
Envoy's network RBAC filter, one per action in Istio's order (AUDIT, DENY, ALLOW), before
tcp_proxy. A refused connection is closed; stats under ``tcp.rbac``.

HTTP-only fields in a policy are handled as Istio does (see ``authz.rules``): an ALLOW rule
that needs them is dropped, a DENY or AUDIT rule matches without them.
"""

from __future__ import annotations

from typing import ClassVar

from envoy.config.listener.v3 import listener_components_pb2 as lc

from controlplane.translate.authz import ALLOW, AUDIT, DENY, workload_rbac
from controlplane.translate.filters.base import INBOUND, RBAC, FilterSite, NetworkFilter
from controlplane.translate.pb import any_of

RBAC_NETWORK_FILTER = "envoy.filters.network.rbac"


class _NetworkRbac(NetworkFilter):
    name: ClassVar[str] = RBAC_NETWORK_FILTER
    action: ClassVar[str]

    def network_filter(self, site: FilterSite) -> lc.Filter | None:
        if site.direction != INBOUND or site.http:
            return None
        built = workload_rbac(site.ctx, site.proxy, tcp=True)
        rbac = built.of(self.action) if built is not None else None
        return lc.Filter(name=self.name, typed_config=any_of(rbac.tcp())) if rbac is not None else None


class AuditNetworkRbac(_NetworkRbac):
    position = RBAC
    action = AUDIT


class DenyNetworkRbac(_NetworkRbac):
    position = RBAC + 1
    action = DENY


class AllowNetworkRbac(_NetworkRbac):
    position = RBAC + 2
    action = ALLOW


FILTERS = (AuditNetworkRbac(), DenyNetworkRbac(), AllowNetworkRbac())
