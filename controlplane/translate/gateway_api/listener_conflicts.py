"""Conflicts between the listeners of one Gateway and of the ListenerSets attached to it
(Gateway API merge semantics, as Istio's ComputeGatewayListenerConflicts applies them).

Listeners are taken in precedence order: the Gateway's own, then the ListenerSets' by creation
time (then namespace/name), each in its own order. A listener that cannot coexist with one
accepted before it loses: it is reported Conflicted (HostnameConflict or ProtocolConflict),
gets no server, and does not block later listeners itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.model.base import creation_order
from controlplane.model.gateway_api import GROUP, KubernetesGateway, Listener, ListenerSet
from controlplane.model.labels import label_selector_matches
from controlplane.translate.gateway_api.inputs import ConversionInputs
from controlplane.translate.gateway_api.status import (
    Condition,
    ListenerStatus,
    RouteGroupKindStatus,
    sort_conditions,
)

# (kind, namespace, name) of a Gateway or ListenerSet -> {listener name: reason}
Conflicts = Mapping[tuple[str, str, str], Mapping[str, str]]

_L4 = frozenset({"TCP", "UDP"})
_HOSTNAMED = frozenset({"HTTP", "HTTPS", "TLS"})
CONFLICT_MESSAGE = "Listener has a conflict with another listener attached to the same Gateway"


def namespace_allowed(namespace: str, parent: KubernetesGateway, inputs: ConversionInputs) -> bool:
    """``spec.allowedListeners.namespaces.from``: None (the default), Same, All or Selector."""
    allowed = parent.spec.allowed_listeners
    spec = allowed.namespaces if allowed is not None else None
    if spec is None or spec.from_ == "None":
        return False
    if spec.from_ == "Same":
        return namespace == parent.meta.namespace
    if spec.from_ == "All":
        return True
    if spec.from_ != "Selector" or spec.selector is None:
        return False
    labels = {**inputs.namespace_labels.get(namespace, {}), "kubernetes.io/metadata.name": namespace}
    return label_selector_matches(spec.selector, labels)


def is_parent(ls: ListenerSet, gw: KubernetesGateway) -> bool:
    """Whether the ListenerSet's ``parentRef`` names this Gateway."""
    ref = ls.spec.parent_ref
    return ((ref.group or GROUP, ref.kind or "Gateway") == (GROUP, "Gateway")
            and (ref.namespace or ls.meta.namespace, ref.name) == (gw.meta.namespace, gw.meta.name))


def gateway_conflicts(gw: KubernetesGateway, inputs: ConversionInputs) -> Conflicts:
    """The losing listeners of the Gateway and of the ListenerSets its ``allowedListeners`` admits."""
    sets = sorted(
        (ls for ls in inputs.listener_sets if is_parent(ls, gw) and namespace_allowed(ls.meta.namespace, gw, inputs)),
        key=lambda ls: (creation_order(ls.meta), ls.meta.namespace, ls.meta.name),
    )
    ordered: list[tuple[tuple[str, str, str], Listener]] = [
        (("Gateway", gw.meta.namespace, gw.meta.name), listener) for listener in gw.spec.listeners
    ]
    for ls in sets:
        ordered += [(("ListenerSet", ls.meta.namespace, ls.meta.name), e.as_listener()) for e in ls.spec.listeners]
    conflicts: dict[tuple[str, str, str], dict[str, str]] = {}
    accepted: list[Listener] = []
    for owner, listener in ordered:
        prior = next((a for a in accepted if not _distinct(listener, a)), None)
        if prior is None:
            accepted.append(listener)
        else:
            conflicts.setdefault(owner, {})[listener.name] = _reason(listener, prior)
    return conflicts


def conflicted_status(
    listener: Listener, reason: str, supported: tuple[RouteGroupKindStatus, ...]
) -> ListenerStatus:
    """Istio's ReportListenerConflict: not accepted, not programmed, conflicted (no ResolvedRefs)."""
    conditions = [Condition("Accepted", "False", reason, CONFLICT_MESSAGE),
                  Condition("Programmed", "False", reason, CONFLICT_MESSAGE),
                  Condition("Conflicted", "True", reason, CONFLICT_MESSAGE)]
    return ListenerStatus(listener.name, 0, supported, sort_conditions(conditions))


def _hostname(listener: Listener) -> str:
    return listener.hostname or "*"


def _distinct(a: Listener, b: Listener) -> bool:
    """Whether two listeners can share the Gateway: other ports; or HTTP-like listeners
    (HTTP, HTTPS, TLS) with other hostnames. L4 listeners own their port; an unknown protocol
    only meets its own."""
    if a.port != b.port:
        return True
    known = _L4 | _HOSTNAMED
    if (a.protocol in _L4 and b.protocol in known) or (b.protocol in _L4 and a.protocol in known):
        return False
    if a.protocol in _HOSTNAMED and b.protocol in _HOSTNAMED:
        return _hostname(a) != _hostname(b)
    return a.protocol != b.protocol


def _reason(a: Listener, b: Listener) -> str:
    if a.protocol in _L4 and b.protocol in _L4:
        return "ProtocolConflict"  # L4 listeners have no hostname to tell them apart
    return "ProtocolConflict" if a.protocol != b.protocol else "HostnameConflict"
