"""Label selector matching."""

from __future__ import annotations

from collections.abc import Mapping


def selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Istio workload selectors: every selector label is present with the same value.

    An empty or absent selector matches every workload (a namespace-wide policy).
    """
    if not selector:
        return True
    for key, value in selector.items():
        if labels.get(key) != value:
            return False
    return True


def service_selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes Service selectors: like ``selector_matches`` but an empty selector selects nothing
    (a Service without selector has its endpoints managed by hand)."""
    if not selector:
        return False
    return selector_matches(selector, labels)
