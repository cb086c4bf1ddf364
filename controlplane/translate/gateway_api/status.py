"""Status conditions as Istio's Gateway API controller writes them, computed as data.

A condition has a success reason and message; an error replaces both and inverts the status
(Istio's ``setConditions``). Conditions are listed sorted by type, as Istio lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTROLLER_NAME = "istio.io/gateway-controller"
MESH_CONTROLLER = "istio.io/mesh-controller"  # a policy's Service (mesh) ancestors


@dataclass(frozen=True, slots=True)
class ConfigError:
    reason: str
    message: str
    # Set when the error also leaves the object not Accepted, with this reason (a listener whose
    # client CA cannot be used is NoValidCACertificate as well as unresolved).
    accepted_reason: str = ""


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str  # "True" / "False"
    reason: str
    message: str


def condition(
    type_: str, reason: str, message: str, error: ConfigError | None = None, *, positive: bool = True
) -> Condition:
    """The success condition, or the error's reason and message with the status inverted."""
    ok, bad = ("True", "False") if positive else ("False", "True")
    if error is not None:
        return Condition(type_, bad, error.reason, error.message)
    return Condition(type_, ok, reason, message)


def sort_conditions(conditions: list[Condition]) -> tuple[Condition, ...]:
    return tuple(sorted(conditions, key=lambda c: c.type))


@dataclass(frozen=True, slots=True)
class RouteGroupKindStatus:
    group: str
    kind: str


@dataclass(frozen=True, slots=True)
class ListenerStatus:
    name: str
    attached_routes: int
    supported_kinds: tuple[RouteGroupKindStatus, ...]
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class ParentRefStatus:
    """The ``parentRef`` as the route wrote it (None fields were not set)."""

    name: str
    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    section_name: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class RouteParentStatus:
    parent_ref: ParentRefStatus
    controller_name: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class ObjectStatus:
    """The status Istio writes on one Gateway API object."""

    kind: str  # the document kind: GatewayClass, Gateway, HTTPRoute, ...
    namespace: str
    name: str
    conditions: tuple[Condition, ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()  # (type, value), Gateways only
    listeners: tuple[ListenerStatus, ...] = ()  # Gateways and ListenerSets
    parents: tuple[RouteParentStatus, ...] = ()  # routes; a policy's ancestors
    attached_listener_sets: int = 0  # Gateways only

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def problems(self) -> list[str]:
        """One line per condition that is not as it should be (for analyze and logs)."""
        out = [f"{c.type}={c.status} {c.reason}: {c.message}" for c in self.conditions if not _healthy(c)]
        for listener in self.listeners:
            out += [
                f"listener {listener.name}: {c.type}={c.status} {c.reason}: {c.message}"
                for c in listener.conditions
                if not _healthy(c)
            ]
        for parent in self.parents:
            ref = parent.parent_ref
            where = f"{ref.kind or 'Gateway'} {ref.namespace or self.namespace}/{ref.name}"
            if ref.section_name:
                where += f" section {ref.section_name}"
            role = "ancestor" if self.kind in POLICY_KINDS else "parent"
            out += [f"{role} {where}: {c.type}={c.status} {c.reason}: {c.message}"
                    for c in parent.conditions if not _healthy(c)]
        return out

    def to_dict(self) -> dict[str, object]:
        """The ``status`` stanza as the Kubernetes API takes it (without lastTransitionTime,
        which the writer sets)."""
        out: dict[str, object] = {}
        if self.kind in _WITH_CONDITIONS:
            out["conditions"] = [_condition_dict(c) for c in self.conditions]
        if self.kind == "Gateway":
            if self.addresses:
                out["addresses"] = [{"type": t, "value": v} for t, v in self.addresses]
            if self.attached_listener_sets:
                out["attachedListenerSets"] = self.attached_listener_sets
        if self.kind in ("Gateway", "ListenerSet"):
            out["listeners"] = [
                {
                    "name": l.name,
                    "attachedRoutes": l.attached_routes,
                    "supportedKinds": [{"group": k.group, "kind": k.kind} for k in l.supported_kinds],
                    "conditions": [_condition_dict(c) for c in l.conditions],
                }
                for l in self.listeners
            ]
        if self.kind not in _WITH_CONDITIONS:
            # a route's parents, or a policy's ancestors (the same shape, other names)
            entries, ref_name = ("ancestors", "ancestorRef") if self.kind in POLICY_KINDS else ("parents", "parentRef")
            out[entries] = [
                {
                    ref_name: {k: v for k, v in (
                        ("group", p.parent_ref.group), ("kind", p.parent_ref.kind), ("name", p.parent_ref.name),
                        ("namespace", p.parent_ref.namespace), ("sectionName", p.parent_ref.section_name),
                        ("port", p.parent_ref.port)) if v is not None},
                    "controllerName": p.controller_name,
                    "conditions": [_condition_dict(c) for c in p.conditions],
                }
                for p in self.parents
            ]
        return out


# Kinds whose status has conditions of their own (routes have them per parent, policies per
# ancestor).
_WITH_CONDITIONS = ("GatewayClass", "Gateway", "ListenerSet")
POLICY_KINDS = ("BackendTLSPolicy", "XBackendTrafficPolicy")
_NEGATIVE = frozenset({"Conflicted"})


def _healthy(c: Condition) -> bool:
    return c.status == ("False" if c.type in _NEGATIVE else "True")


def _condition_dict(c: Condition) -> dict[str, str]:
    return {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
