"""AuthorizationPolicy on a sidecar's inbound TCP chains (and the inbound passthrough chain):
Envoy's network RBAC filter, one per action in Istio's order (AUDIT, DENY, ALLOW), before
tcp_proxy. A refused connection is closed; stats under ``tcp.rbac``.

HTTP-only fields in a policy are handled as Istio does (see ``authz.rules``): an ALLOW rule
that needs them is dropped, a DENY or AUDIT rule matches without them.

As on HTTP chains (``filters/rbac.py``), the configs are served over ECDS
(``<namespace>.tcp-rbac-audit``, ``-deny``, ``-allow``) and the filters are on every inbound TCP
chain once the mesh has an AuthorizationPolicy. A new config applies to connections accepted
after it: Envoy decides a connection once, and an open connection keeps that decision (with a
listener change, Envoy would instead close every open connection of the changed chains, allowed
ones included, at the end of its drain time).
"""

from __future__ import annotations

from typing import ClassVar

from envoy.config.listener.v3 import listener_components_pb2 as lc

from controlplane.translate.authz import ALLOW, AUDIT, DENY, NO_POLICY, workload_rbac
from controlplane.translate.authz.workload import authorization_in_use
from controlplane.translate.filters.base import (
    POLICY_DIRECTIONS,
    RBAC,
    FilterSite,
    NetworkFilter,
)

RBAC_NETWORK_FILTER = "envoy.filters.network.rbac"


class _NetworkRbac(NetworkFilter):
    name: ClassVar[str] = RBAC_NETWORK_FILTER
    action: ClassVar[str]

    def network_filter(self, site: FilterSite) -> lc.Filter | None:
        if site.direction not in POLICY_DIRECTIONS or site.http or not authorization_in_use(site.ctx):
            return None
        built = workload_rbac(site.ctx, site.proxy, tcp=True)
        rbac = (built.of(self.action) if built is not None else None) or NO_POLICY
        return self.discovered(site, f"tcp-rbac-{self.action.lower()}", rbac.tcp())


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
