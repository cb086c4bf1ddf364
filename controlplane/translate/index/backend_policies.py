"""DestinationRules generated from Gateway API backend policies (BackendTLSPolicy), merged with
the user-written ones as Istio merges them (pilot/pkg/model/destination_rule.go): a user rule
for the same host in the same namespace, selecting no workloads, keeps every field it sets and
takes the generated rule's fields where it sets none (per port too). Where there is no such
rule, the generated one stands on its own, after the user's rules of its namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from controlplane.model.destination_rule import DestinationRule, PortTrafficPolicy, TrafficPolicy
from controlplane.model.labels import selector_labels

_TOP_LEVEL = ("load_balancer", "connection_pool", "outlier_detection", "tls", "tunnel", "proxy_protocol",
              "retry_budget")
_PORT_LEVEL = ("load_balancer", "connection_pool", "outlier_detection", "tls")


def merge_generated_rules(
    user_rules: list[DestinationRule], generated: Iterable[DestinationRule], host_of: Callable[[DestinationRule], str]
) -> list[DestinationRule]:
    """One namespace's rules with its generated ones merged in (``host_of`` resolves a rule's host)."""
    out = list(user_rules)
    for rule in generated:
        host = host_of(rule)
        targets = [i for i, user in enumerate(user_rules)
                   if host_of(user) == host and not selector_labels(user.spec.workload_selector)]
        for index in targets:
            user = out[index]
            policy = merge_traffic_policies(user.spec.traffic_policy, rule.spec.traffic_policy)
            out[index] = replace(user, spec=replace(user.spec, traffic_policy=policy))
        if not targets:
            out.append(rule)
    return out


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
