"""The RBAC a workload's inbound chains carry, shared by every proxy of the same namespace
and (where some policy selects by labels) the same labels within one snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.translate.authz.builder import WorkloadRbac, build_workload_rbac
from controlplane.translate.authz.trust_domain import TrustDomainBundle

if TYPE_CHECKING:
    from controlplane.translate.index.context import PushContext
    from controlplane.translate.proxy import Proxy


def trust_domain_bundle(ctx: PushContext) -> TrustDomainBundle:
    return TrustDomainBundle.of(ctx.mesh.trust_domain, ctx.mesh.trust_domain_aliases)


def authorization_in_use(ctx: PushContext) -> bool:
    """Whether inbound chains carry the RBAC filters: every workload's do, as soon as the mesh
    has an AuthorizationPolicy, with a config that lets everything through where none applies.
    The filters' configs come over ECDS, so adding, changing or removing a workload's policies
    changes those configs and never its listeners (only the mesh's first policy, or the
    removal of its last, does)."""
    return bool(ctx.policies.authorization_policies)


def workload_rbac(ctx: PushContext, proxy: Proxy, *, tcp: bool) -> WorkloadRbac | None:
    """The RBAC of the ALLOW/DENY/AUDIT AuthorizationPolicies that apply to ``proxy``, for
    its TCP chains (``tcp``) or its HTTP ones; None when none applies."""
    policies = ctx.policies.authorization_policies
    if not policies:
        return None
    root = ctx.mesh.root_namespace
    labels = proxy.labels if policies.selects_by_labels(root, proxy.namespace) else None
    key = (proxy.namespace, labels, tcp)
    if key in ctx.memo.authz:
        return ctx.memo.authz[key]
    applicable = policies.applicable(root, proxy.namespace, proxy.label_map).all()
    result = build_workload_rbac(applicable, tcp=tcp, bundle=trust_domain_bundle(ctx))
    ctx.memo.authz[key] = result
    return result
