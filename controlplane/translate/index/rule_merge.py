"""DestinationRules for the same host in the same namespace, merged as Istio merges them
(pilot/pkg/model/destination_rule.go, mergeDestinationRule), oldest first:

- rules with the same exportTo and no workload selector (or equal ones) become one: the first
  keeps its fields, gains the later ones' subsets of other names, and takes a later one's
  traffic policy only if it has none;
- a rule exported to more namespaces than an earlier one is merged into it too (the earlier's
  exportTo holds); rules with other exportTo or other selectors stand on their own;
- a rule made from a Gateway API backend policy (``internal.istio.io/parents``) and a user's:
  the user's traffic policy fields win whatever the order, the policy fills the gaps (per
  port too; Istio's mergeBackendPolicyTrafficPolicy).

A rule merged with nothing is returned as it came (the same object: later pushes compare them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from controlplane.model.base import creation_order
from controlplane.model.destination_rule import DestinationRule, PortTrafficPolicy, TrafficPolicy
from controlplane.model.labels import selector_labels
from controlplane.translate.gateway_api.backend_rules import is_backend_policy_rule
from controlplane.translate.index.services import export_set

_TOP_LEVEL = ("load_balancer", "connection_pool", "outlier_detection", "tls", "tunnel", "proxy_protocol",
              "retry_budget")
_PORT_LEVEL = ("load_balancer", "connection_pool", "outlier_detection", "tls")


@dataclass
class _Merged:
    rule: DestinationRule
    export: frozenset[str]


def merge_namespace_rules(
    rules: Iterable[DestinationRule], host_of: Callable[[DestinationRule], str]
) -> list[DestinationRule]:
    """One namespace's rules (users' and generated ones), merged; ``host_of`` resolves a host."""
    by_host: dict[str, list[_Merged]] = {}
    for rule in sorted(rules, key=lambda r: (creation_order(r.meta), r.meta.name)):
        export = export_set(rule.spec.export_to)
        merged = by_host.setdefault(host_of(rule), [])
        alone = True
        for earlier in merged:
            if export == earlier.export:
                alone = False
            elif earlier.export and export > earlier.export:
                alone = True  # Istio's: merged here; its selector check below may still join them
            else:
                alone = True
                continue
            mine, theirs = selector_labels(rule.spec.workload_selector), selector_labels(earlier.rule.spec.workload_selector)
            if mine and theirs and mine != theirs:
                alone = True
                continue
            if bool(mine) == bool(theirs):
                alone = False
            earlier.rule = _merge(earlier.rule, rule)
        if alone:
            merged.append(_Merged(rule, export))
    return [m.rule for entries in by_host.values() for m in entries]


def _merge(first: DestinationRule, later: DestinationRule) -> DestinationRule:
    names = {s.name for s in first.spec.subsets}
    subsets = first.spec.subsets + tuple(s for s in later.spec.subsets if s.name not in names)
    generated_first, generated_later = is_backend_policy_rule(first), is_backend_policy_rule(later)
    policy = first.spec.traffic_policy
    if generated_first == generated_later:
        policy = policy if policy is not None else later.spec.traffic_policy
    elif generated_later:
        policy = merge_traffic_policies(policy, later.spec.traffic_policy)
    else:
        policy = merge_traffic_policies(later.spec.traffic_policy, policy)
    return replace(first, spec=replace(first.spec, subsets=subsets, traffic_policy=policy))


def merge_traffic_policies(user: TrafficPolicy | None, backend: TrafficPolicy | None) -> TrafficPolicy | None:
    """Istio's mergeBackendPolicyTrafficPolicy: the user's fields win, the backend fills the gaps."""
    if user is None:
        return backend
    if backend is None:
        return user
    fields = {name: getattr(user, name) if getattr(user, name) is not None else getattr(backend, name)
              for name in _TOP_LEVEL}
    return replace(user, **fields, port_level_settings=_merge_ports(user.port_level_settings,
                                                                      backend.port_level_settings))


def _merge_ports(
    user: tuple[PortTrafficPolicy, ...], backend: tuple[PortTrafficPolicy, ...]
) -> tuple[PortTrafficPolicy, ...]:
    by_port = {_port(p): p for p in user}
    merged = list(user)
    for theirs in backend:
        ours = by_port.get(_port(theirs))
        if ours is None:
            merged.append(theirs)
            continue
        fields = {name: getattr(ours, name) if getattr(ours, name) is not None else getattr(theirs, name)
                  for name in _PORT_LEVEL}
        merged[merged.index(ours)] = replace(ours, **fields)
    return tuple(merged)


def _port(policy: PortTrafficPolicy) -> int:
    return policy.port.number if policy.port is not None else 0
