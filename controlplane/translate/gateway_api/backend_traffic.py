"""XBackendTrafficPolicy -> a retry budget for the calls to a Service, and the policies' status
(Istio's BackendTrafficPolicyCollection).

A policy targets Services of its namespace. Its ``retryConstraint`` becomes the DestinationRule's
``retryBudget`` (the budget's percent and interval; ``minRetryRate.count`` as the minimum of
concurrent retries, 10 by default as the Gateway API says); every policy also sets the (default)
load balancer, as Istio's does. ``sessionPersistence`` is not supported: the status says so. The
parts become DestinationRules in ``backend_rules``; each target gets one ancestor
(``istio.io/mesh-controller``).
"""

from __future__ import annotations

from controlplane.model.destination_rule import LoadBalancerSettings, RetryBudget
from controlplane.model.gateway_api import XBackendTrafficPolicy
from controlplane.translate.gateway_api.backend_rules import (
    VALID,
    PolicyPart,
    ignored,
    precedence,
    resolve_target,
    target_status,
)
from controlplane.translate.gateway_api.inputs import ConversionInputs
from controlplane.translate.gateway_api.status import (
    MESH_CONTROLLER,
    Condition,
    ObjectStatus,
    RouteParentStatus,
)

_DEFAULT_MIN_RETRIES = 10  # the Gateway API's default minRetryRate count


def convert_backend_traffic_policies(inputs: ConversionInputs) -> tuple[list[PolicyPart], list[ObjectStatus]]:
    parts: list[PolicyPart] = []
    statuses = []
    for policy in sorted(inputs.backend_traffic_policies, key=precedence):
        ancestors, found = _convert_policy(policy, inputs)
        parts += found
        statuses.append(ObjectStatus(XBackendTrafficPolicy.KIND, policy.meta.namespace, policy.meta.name,
                                     parents=ancestors))
    return parts, statuses


def _convert_policy(
    policy: XBackendTrafficPolicy, inputs: ConversionInputs
) -> tuple[tuple[RouteParentStatus, ...], list[PolicyPart]]:
    if (opted_out := ignored(policy, policy.spec.target_refs)) is not None:
        return opted_out, []
    budget = _retry_budget(policy)
    message = VALID
    if policy.spec.session_persistence is not None:
        message = "Configuration is valid, but Istio does not support the following fields: sessionPersistence"
    accepted = Condition("Accepted", "True", "Accepted", message)
    ancestors, parts = [], []
    for ref in policy.spec.target_refs:
        target, hosts, error = resolve_target(ref, policy.meta.namespace, inputs, service_entries=False)
        if target is not None:
            parts += [PolicyPart(policy, target, host, load_balancer=LoadBalancerSettings(), retry_budget=budget)
                      for host in hosts]
        ancestors.append(RouteParentStatus(target_status(ref), MESH_CONTROLLER, (error or accepted,)))
    return tuple(ancestors), parts


def _retry_budget(policy: XBackendTrafficPolicy) -> RetryBudget | None:
    retry = policy.spec.retry_constraint
    if retry is None:
        return None
    rate = retry.min_retry_rate
    count = rate.count if rate is not None and rate.count is not None else _DEFAULT_MIN_RETRIES
    percent = retry.budget.percent
    return RetryBudget(percent=None if percent is None else float(percent), min_retry_concurrency=count,
                       budget_interval=retry.budget.interval)
