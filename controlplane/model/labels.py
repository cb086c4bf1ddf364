"""Label selectors: the one implementation every caller uses (Istio's ``labels.Instance.SubsetOf``).

Istio selects workloads by equality only: a selector matches when each of its labels is
present on the workload with the same value. What an empty selector means differs by kind,
so it has its own function: a policy without one covers its whole namespace
(``selector_matches``), a Kubernetes Service without one selects no Pod (``service_selects``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from controlplane.model.common import LabelSelector, WorkloadSelector

if TYPE_CHECKING:
    from controlplane.model.gateway_api import KubeLabelSelector

# A selector as the model holds it (a mapping) or as indexes keep it (sorted pairs).
Selector = Mapping[str, str] | Iterable[tuple[str, str]]


def selector_labels(selector: WorkloadSelector | LabelSelector | None) -> Mapping[str, str]:
    """The labels of a ``selector.matchLabels`` (security, telemetry, DestinationRule
    ``workloadSelector``) or a ``workloadSelector.labels`` (Sidecar, ServiceEntry); empty
    for no selector."""
    if selector is None:
        return {}
    if isinstance(selector, WorkloadSelector):
        return selector.match_labels or {}
    return selector.labels or {}


def selector_matches(selector: Selector | None, labels: Mapping[str, str]) -> bool:
    """Istio workload selectors: every selector label is present with the same value.

    An empty or absent selector matches every workload (a namespace-wide policy).
    """
    if not selector:
        return True
    items = selector.items() if isinstance(selector, Mapping) else selector
    return all(labels.get(key) == value for key, value in items)


def service_selects(selector: Selector | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes Service selectors: like ``selector_matches`` but an empty selector selects nothing
    (a Service without selector has its endpoints managed by hand)."""
    if not selector:
        return False
    return selector_matches(selector, labels)


def label_selector_matches(selector: KubeLabelSelector, labels: Mapping[str, str]) -> bool:
    """A Kubernetes ``metav1.LabelSelector`` (``matchLabels`` and ``matchExpressions`` with
    In, NotIn, Exists, DoesNotExist), as ``LabelSelectorAsSelector``. An empty selector
    matches everything; an unknown operator matches nothing."""
    if not selector_matches(selector.match_labels, labels):
        return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        value = labels.get(requirement.key)
        operator = requirement.operator
        if operator == "In":
            ok = present and value in requirement.values
        elif operator == "NotIn":
            ok = not present or value not in requirement.values
        elif operator == "Exists":
            ok = present
        elif operator == "DoesNotExist":
            ok = not present
        else:
            ok = False
        if not ok:
            return False
    return True
