"""Which pods get a sidecar: Istio's webhook selectors (namespace label ``istio-injection`` /
``istio.io/rev``, pod label ``sidecar.istio.io/inject``) and its ``injectRequired`` (hostNetwork,
system namespaces, the pod's own opt-in or opt-out, the injection policy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.inject import keys as a

# Never injected, whatever the labels say (Istio's IgnoredNamespaces).
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})


@dataclass(frozen=True)
class Decision:
    inject: bool
    reason: str


def webhook_selects(
    namespace_labels: Mapping[str, str], pod_labels: Mapping[str, str], revision: str = "default"
) -> bool:
    """Whether Istio's MutatingWebhookConfiguration for ``revision`` would send the pod to the
    injector at all (its namespaceSelector and objectSelector pairs)."""
    ns_injection = namespace_labels.get(a.NAMESPACE_INJECTION)
    ns_rev = namespace_labels.get(a.REVISION)
    pod_inject = pod_labels.get(a.INJECT)
    pod_rev = pod_labels.get(a.REVISION)
    if ns_injection == "enabled":  # namespace.sidecar-injector.istio.io (default revision)
        return revision == "default" and pod_inject != "false"
    if ns_injection is None and ns_rev is not None:  # rev.namespace.sidecar-injector.istio.io
        return ns_rev == revision and pod_inject != "false"
    if ns_injection is None and ns_rev is None:
        if pod_rev is not None:  # rev.object.sidecar-injector.istio.io
            return pod_rev == revision and pod_inject != "false"
        return revision == "default" and pod_inject == "true"  # object.sidecar-injector
    return False  # istio-injection=disabled (or another value): never


def injection_required(
    metadata: Mapping[str, Any],
    spec: Mapping[str, Any],
    *,
    namespace: str,
    policy: str = "enabled",
) -> Decision:
    """Istio's injectRequired: once a pod reached the injector, does it get a sidecar?"""
    if spec.get("hostNetwork"):
        return Decision(False, "host networking enabled")
    if namespace in IGNORED_NAMESPACES:
        return Decision(False, f"namespace {namespace} is never injected")
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    selector = labels.get(a.INJECT, annotations.get(a.INJECT, ""))  # the label wins
    selector = str(selector).lower()
    if selector == "":
        if policy == "disabled":
            return Decision(False, "injection policy disabled and no sidecar.istio.io/inject")
        return Decision(True, "injection policy enabled")
    if selector in a.TRUE_VALUES:
        return Decision(True, f"sidecar.istio.io/inject={selector}")
    return Decision(False, f"sidecar.istio.io/inject={selector}")
