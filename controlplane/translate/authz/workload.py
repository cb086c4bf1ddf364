"""The RBAC a workload's inbound chains carry, shared by every proxy of the same namespace
and (where some policy selects by labels) the same labels within one snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from controlplane.model.security import AuthorizationPolicy
from controlplane.translate.authz.builder import WorkloadRbac, build_workload_rbac
from controlplane.translate.authz.trust_domain import TrustDomainBundle

if TYPE_CHECKING:
    from controlplane.translate.index.context import LabelsKey, PushContext
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


def workload_key(ctx: PushContext, proxy: Proxy, *, tcp: bool) -> tuple[str, LabelsKey, bool]:
    """What a workload's authorization output depends on: its namespace, its labels only where
    a policy selects by them, and the chain kind. Proxies with equal keys share the output."""
    policies = ctx.policies.authorization_policies
    selective = policies.selects_by_labels(ctx.mesh.root_namespace, proxy.namespace)
    return (proxy.namespace, proxy.labels if selective else None, tcp)


def applicable_policies(ctx: PushContext, proxy: Proxy) -> tuple[AuthorizationPolicy, ...]:
    """Every AuthorizationPolicy that applies to ``proxy`` (root, namespace, workload)."""
    policies = ctx.policies.authorization_policies
    return policies.applicable(ctx.mesh.root_namespace, proxy.namespace, proxy.label_map).all()


def workload_rbac(ctx: PushContext, proxy: Proxy, *, tcp: bool) -> WorkloadRbac | None:
    """The RBAC of the ALLOW/DENY/AUDIT AuthorizationPolicies that apply to ``proxy``, for
    its TCP chains (``tcp``) or its HTTP ones; None when none applies."""
    if not ctx.policies.authorization_policies:
        return None
    key = workload_key(ctx, proxy, tcp=tcp)
    if key not in ctx.memo.authz:
        ctx.memo.authz[key] = build_workload_rbac(
            applicable_policies(ctx, proxy), tcp=tcp, bundle=trust_domain_bundle(ctx)
        )
    return ctx.memo.authz[key]
