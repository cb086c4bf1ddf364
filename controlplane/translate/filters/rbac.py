"""AuthorizationPolicy on a sidecar's inbound HTTP chains: Envoy's HTTP RBAC filter, one per
action in Istio's order (AUDIT, DENY, ALLOW), after jwt_authn and ext_authz (CUSTOM).

A refused request gets 403 ``RBAC: access denied``. The RBAC itself is ``translate.authz``'s,
computed once per namespace and labels (see ``authz.workload``). The configs are served over
ECDS (``<namespace>.rbac-audit``, ``-deny``, ``-allow``): once the mesh has an
AuthorizationPolicy, the three filters sit on every inbound HTTP chain, an action without
policies letting everything through, so a policy change never touches the listener.
"""

from __future__ import annotations

from typing import ClassVar

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.translate.authz import ALLOW, AUDIT, DENY, NO_POLICY, workload_rbac
from controlplane.translate.authz.workload import authorization_in_use
from controlplane.translate.filters.base import (
    POLICY_DIRECTIONS,
    RBAC,
    FilterSite,
    HttpFilter,
)

RBAC_HTTP_FILTER = "envoy.filters.http.rbac"


class _HttpRbac(HttpFilter):
    name: ClassVar[str] = RBAC_HTTP_FILTER
    action: ClassVar[str]

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        if site.direction not in POLICY_DIRECTIONS or not site.http or not authorization_in_use(site.ctx):
            return None
        built = workload_rbac(site.ctx, site.proxy, tcp=False)
        rbac = (built.of(self.action) if built is not None else None) or NO_POLICY
        return self.discovered(site, f"rbac-{self.action.lower()}", rbac.http())


class AuditRbac(_HttpRbac):
    position = RBAC
    action = AUDIT


class DenyRbac(_HttpRbac):
    position = RBAC + 1
    action = DENY


class AllowRbac(_HttpRbac):
    position = RBAC + 2
    action = ALLOW


FILTERS = (AuditRbac(), DenyRbac(), AllowRbac())
