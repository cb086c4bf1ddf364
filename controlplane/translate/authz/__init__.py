"""AuthorizationPolicy (ALLOW, DENY, AUDIT, dry-run) -> Envoy RBAC, with Istio's semantics.

- ``terms``: an attribute with values and notValues, and the RBAC combinators;
- ``matchers``: Envoy string, header, path, metadata and CIDR matchers as Istio writes them;
- ``sources`` / ``operations``: ``from.source`` and ``to.operation`` fields;
- ``conditions``: ``when`` keys;
- ``trust_domain``: trust domain aliases in principals;
- ``rules``: one rule -> one RBAC policy (HTTP-only fields on TCP chains as Istio);
- ``builder``: a workload's policies -> one RBAC per action;
- ``workload``: the memoized per-workload result the filter modules use
  (``filters/rbac.py`` for HTTP chains, ``filters/rbac_network.py`` for TCP ones).
"""

from controlplane.translate.authz.builder import (
    ACTIONS,
    ALLOW,
    AUDIT,
    CUSTOM,
    DENY,
    NO_POLICY,
    ActionRbac,
    WorkloadRbac,
    build_action,
    build_workload_rbac,
    policy_name,
)
from controlplane.translate.authz.trust_domain import TrustDomainBundle
from controlplane.translate.authz.workload import workload_rbac

__all__ = [
    "ACTIONS",
    "ALLOW",
    "AUDIT",
    "CUSTOM",
    "DENY",
    "NO_POLICY",
    "ActionRbac",
    "TrustDomainBundle",
    "WorkloadRbac",
    "build_action",
    "build_workload_rbac",
    "policy_name",
    "workload_rbac",
]
