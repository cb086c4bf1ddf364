"""AuthorizationPolicies of one workload -> Envoy RBAC configs, one per action (Istio's
``authz/builder``).

Envoy runs them in Istio's order: AUDIT (``LOG``: marks requests for access logs, never
blocks), then DENY (a match is refused), then ALLOW (anything unmatched is refused, once
any ALLOW policy applies). Policies annotated ``istio.io/dry-run: "true"`` go to
``shadow_rules``: evaluated, counted under ``istio_dry_run_allow_`` / ``istio_dry_run_deny_``
stats, never enforced. Each rule is one RBAC policy named ``ns[NS]-policy[NAME]-rule[N]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2

from controlplane.model.security import AuthorizationPolicy
from controlplane.translate.authz.rules import match_never, rule_policy
from controlplane.translate.authz.trust_domain import TrustDomainBundle

ALLOW, DENY, AUDIT, CUSTOM = "ALLOW", "DENY", "AUDIT", "CUSTOM"
ACTIONS = (AUDIT, DENY, ALLOW)  # the order of the filters in a chain
DRY_RUN_ANNOTATION = "istio.io/dry-run"
DRY_RUN_ALLOW_PREFIX = "istio_dry_run_allow_"
DRY_RUN_DENY_PREFIX = "istio_dry_run_deny_"
TCP_STAT_PREFIX = "tcp."

# CUSTOM is ext_authz's (authz/ext_authz.py builds its shadow rules).
_ENVOY_ACTION = {ALLOW: rbac_pb2.RBAC.ALLOW, DENY: rbac_pb2.RBAC.DENY, AUDIT: rbac_pb2.RBAC.LOG}
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})


def is_dry_run(policy: AuthorizationPolicy) -> bool:
    """The ``istio.io/dry-run`` annotation, read as Go's ParseBool (anything else: false)."""
    return policy.meta.annotations.get(DRY_RUN_ANNOTATION, "") in _TRUE


def policy_name(namespace: str, name: str, rule: int) -> str:
    return f"ns[{namespace}]-policy[{name}]-rule[{rule}]"


@dataclass(frozen=True, slots=True)
class ActionRbac:
    """The RBAC of one action: enforced ``rules`` and dry-run ``shadow_rules`` (each None
    when no policy of that kind applies)."""

    rules: rbac_pb2.RBAC | None
    shadow_rules: rbac_pb2.RBAC | None

    @property
    def shadow_stat_prefix(self) -> str:
        """As Istio sets it (the allow prefix even when there are no shadow rules)."""
        action = self.shadow_rules.action if self.shadow_rules is not None else rbac_pb2.RBAC.ALLOW
        return {rbac_pb2.RBAC.ALLOW: DRY_RUN_ALLOW_PREFIX, rbac_pb2.RBAC.DENY: DRY_RUN_DENY_PREFIX}.get(action, "")

    def http(self) -> http_rbac_pb2.RBAC:
        out = http_rbac_pb2.RBAC(shadow_rules_stat_prefix=self.shadow_stat_prefix)
        _set(out.rules, self.rules)
        _set(out.shadow_rules, self.shadow_rules)
        return out

    def tcp(self) -> network_rbac_pb2.RBAC:
        out = network_rbac_pb2.RBAC(stat_prefix=TCP_STAT_PREFIX, shadow_rules_stat_prefix=self.shadow_stat_prefix)
        _set(out.rules, self.rules)
        _set(out.shadow_rules, self.shadow_rules)
        return out


# An action no policy uses: its filter stays in the chain (so a policy added later changes only
# the filter's config) and lets everything through (no ``rules``, no ``shadow_rules``).
NO_POLICY = ActionRbac(None, None)


def _set(field: rbac_pb2.RBAC, value: rbac_pb2.RBAC | None) -> None:
    """Copy ``value`` in, present even when it holds no policy (an ALLOW with no policy left
    refuses everything)."""
    if value is not None:
        field.SetInParent()
        field.MergeFrom(value)


def build_action(
    policies: Sequence[AuthorizationPolicy], action: str, *, tcp: bool, bundle: TrustDomainBundle
) -> ActionRbac | None:
    """The RBAC of the policies of ``action`` among ``policies``; None when there are none."""
    chosen = [p for p in policies if p.spec.action == action]
    if not chosen:
        return None
    envoy_action = _ENVOY_ACTION[action]
    enforced = rbac_pb2.RBAC(action=envoy_action)
    shadow = rbac_pb2.RBAC(action=envoy_action)
    has_enforced = has_shadow = False
    for policy in chosen:
        dry_run = is_dry_run(policy)
        target = shadow if dry_run else enforced
        has_shadow |= dry_run
        has_enforced |= not dry_run
        ns, name = policy.meta.namespace, policy.meta.name
        if not policy.spec.rules:  # an ALLOW policy with no rules allows nothing
            target.policies[policy_name(ns, name, 0)].CopyFrom(match_never())
        for index, rule in enumerate(policy.spec.rules):
            built = rule_policy(rule, ns, tcp=tcp, strict=action == ALLOW, bundle=bundle)
            if built is not None:
                target.policies[policy_name(ns, name, index)].CopyFrom(built)
    return ActionRbac(enforced if has_enforced else None, shadow if has_shadow else None)


@dataclass(frozen=True, slots=True)
class WorkloadRbac:
    """The RBAC of one workload on one kind of chain (HTTP or TCP), per action."""

    audit: ActionRbac | None = None
    deny: ActionRbac | None = None
    allow: ActionRbac | None = None

    def of(self, action: str) -> ActionRbac | None:
        return {AUDIT: self.audit, DENY: self.deny, ALLOW: self.allow}[action]


def build_workload_rbac(
    policies: Sequence[AuthorizationPolicy], *, tcp: bool, bundle: TrustDomainBundle
) -> WorkloadRbac | None:
    """None when no ALLOW, DENY or AUDIT policy applies (CUSTOM is ext_authz's)."""
    built = WorkloadRbac(
        audit=build_action(policies, AUDIT, tcp=tcp, bundle=bundle),
        deny=build_action(policies, DENY, tcp=tcp, bundle=bundle),
        allow=build_action(policies, ALLOW, tcp=tcp, bundle=bundle),
    )
    return None if built.audit is None and built.deny is None and built.allow is None else built
