"""Which parents a route binds to, and why not (Istio's extractParentReferenceInfo,
referenceAllowed, hostnameAllowedByIsolation and createRouteStatus).

A parentRef names a Gateway or a ListenerSet (optionally one listener by ``sectionName`` or
``port``), or a
Service or ServiceEntry (GAMMA: the route applies to sidecars calling that service, Istio's
``mesh`` gateway). Each listener it could mean is checked on its own; the status reports one
entry per parentRef, Accepted when any of its listeners took the route.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.model.gateway_api import GROUP, AnyRoute, ParentReference
from controlplane.model.hosts import host_matches, hosts_overlap, is_wildcard
from controlplane.translate.gateway_api.gateways import ParentInfo
from controlplane.translate.gateway_api.inputs import ConversionInputs
from controlplane.translate.gateway_api.status import (
    CONTROLLER_NAME,
    ConfigError,
    ParentRefStatus,
    RouteParentStatus,
    condition,
    sort_conditions,
)

MESH = "mesh"
_ISTIO_GROUP = "networking.istio.io"
# The parents whose listeners routes attach to (the others are services: GAMMA).
LISTENER_PARENTS = ("Gateway", "ListenerSet")
MESH_PARENT = ParentInfo(
    internal_name=MESH,
    allowed_kinds=tuple((GROUP, k) for k in ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")),
    hostnames=(),
    original_hostname="",
    section_name="",
    port=0,
    protocol="",
)
# Istio's rank of denial reasons: a parentRef reports its least severe result.
_RANK = {None: 0, "NotAllowedByListeners": 1, "NoMatchingListenerHostname": 2, "ParentRefConflict": 3,
         "NoMatchingParent": 4}
_ROUTE_API_VERSION = {"HTTPRoute": "v1", "GRPCRoute": "v1", "TLSRoute": "v1alpha2", "TCPRoute": "v1alpha2"}


@dataclass(frozen=True, slots=True)
class RouteParent:
    """One (parentRef, listener) pair of a route."""

    ref: ParentReference
    parent: ParentInfo
    kind: str  # "Gateway", "ListenerSet", "Service" or "ServiceEntry"
    namespace: str  # of the parent object
    denied: ConfigError | None
    banned_hostnames: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_mesh(self) -> bool:
        return self.parent.internal_name == MESH

    def hostname_allowed(self, route_host: str) -> bool:
        """Istio's hostnameAllowedByIsolation: a wildcard listener does not take hosts a more
        specific listener on the same port and protocol claims."""
        ours = self.parent.original_hostname
        if ours and not is_wildcard(ours):
            return True
        if ours and not hosts_overlap(route_host, ours):
            return False
        for other in self.banned_hostnames:
            if len(ours) > len(other):
                continue
            if host_matches(other, route_host):
                return False
        return True


def parent_kind(ref: ParentReference) -> str | None:
    group = ref.group if ref.group is not None else GROUP
    kind = ref.kind if ref.kind is not None else "Gateway"
    if group == GROUP and kind in LISTENER_PARENTS:
        return kind
    if (group, kind) in (("", "Service"), ("core", "Service")):
        return "Service"
    if (group, kind) == (_ISTIO_GROUP, "ServiceEntry"):
        return "ServiceEntry"
    return None  # maybe for another controller: ignored, as Istio does


def resolve_parents(
    route: AnyRoute, hostnames: tuple[str, ...], parents: dict[tuple[str, str, str], list[ParentInfo]],
    inputs: ConversionInputs,
) -> list[RouteParent]:
    out = []
    namespace = route.meta.namespace
    for ref in route.spec.parent_refs:
        kind = parent_kind(ref)
        if kind is None:
            continue
        parent_ns = ref.namespace or namespace
        candidates = parents.get((kind, parent_ns, ref.name), []) if kind in LISTENER_PARENTS else [MESH_PARENT]
        for info in candidates:
            banned = frozenset(
                other.original_hostname for other in candidates
                if other is not info and other.port == info.port and other.protocol == info.protocol
            ) - {info.original_hostname}
            denied = _reference_denied(route, info, kind, ref, parent_ns, hostnames, inputs)
            out.append(RouteParent(ref, info, kind, parent_ns, denied, banned))
    out.sort(key=lambda p: parent_ref_string(p.ref, namespace))
    return out


def _reference_denied(
    route: AnyRoute, parent: ParentInfo, kind: str, ref: ParentReference, parent_ns: str,
    hostnames: tuple[str, ...], inputs: ConversionInputs,
) -> ConfigError | None:
    if kind == "Service":
        if (parent_ns, ref.name) not in inputs.services:
            return ConfigError("NoMatchingParent", f'parent service: "{ref.name}" not found')
    elif kind == "ServiceEntry":
        if (parent_ns, ref.name) not in inputs.service_entries:
            return ConfigError("NoMatchingParent", f'parent service entry: "{ref.name}" not found')
    else:
        if ref.port is not None and ref.port != parent.port:
            return ConfigError("NoMatchingParent", f"port {ref.port} not found")
        if ref.section_name and ref.section_name != parent.section_name:
            return ConfigError("NoMatchingParent", f'sectionName "{ref.section_name}" not found')
        if parent.hostnames:
            matched = host_matched = False
            for route_host in hostnames or ("*",):
                for entry in parent.hostnames:
                    ns, slash, host = entry.partition("/")
                    if not slash:
                        ns, host = "*", entry
                    host_ok = hosts_overlap(host, route_host)
                    host_matched = host_matched or host_ok
                    if host_ok and ns in ("*", route.meta.namespace):
                        matched = True
                        break
                if matched:
                    break
            if not matched:
                if host_matched:
                    return ConfigError(
                        "NotAllowedByListeners",
                        f'hostnames matched parent hostname "{parent.original_hostname}", but namespace '
                        f'"{route.meta.namespace}" is not allowed by the parent',
                    )
                return ConfigError("NoMatchingListenerHostname",
                                   f'no hostnames matched parent hostname "{parent.original_hostname}"')
    if (GROUP, route.KIND) not in parent.allowed_kinds:
        version = _ROUTE_API_VERSION.get(route.KIND, "v1")
        return ConfigError("NotAllowedByListeners", f"kind {GROUP}/{version}/{route.KIND} is not allowed")
    return None


def parent_ref_string(ref: ParentReference, namespace: str) -> str:
    return (f"{ref.group if ref.group is not None else GROUP}/{ref.kind if ref.kind is not None else 'Gateway'}/"
            f"{ref.name}/{ref.section_name or ''}/{ref.port or 0}.{ref.namespace or namespace}")


def route_parent_statuses(
    parents: list[RouteParent], namespace: str, gateway_error: ConfigError | None, mesh_error: ConfigError | None
) -> tuple[RouteParentStatus, ...]:
    """Istio's createRouteStatus: one entry per parentRef, its least severe denial (messages
    of equal rank joined), ResolvedRefs from the route's own errors."""
    grouped: dict[ParentReference, list[RouteParent]] = {}
    for p in parents:
        grouped.setdefault(p.ref, []).append(p)
    out = []
    for ref, results in grouped.items():
        successes = sum(1 for r in results if r.denied is None)
        best = min(_RANK.get(r.denied.reason if r.denied else None, 0) for r in results)
        chosen = [r.denied for r in results if _RANK.get(r.denied.reason if r.denied else None, 0) == best]
        denied = None
        if best != 0:
            first = chosen[0]
            assert first is not None
            denied = ConfigError(first.reason, "; ".join(c.message for c in chosen if c is not None))
        message = "Route was valid" if successes <= 1 else f"Route was valid, bound to {successes} parents"
        route_error = mesh_error if results[0].is_mesh else gateway_error
        conditions = sort_conditions([
            condition("Accepted", "Accepted", message, denied),
            condition("ResolvedRefs", "ResolvedRefs", "All references resolved", route_error),
        ])
        status_ref = ParentRefStatus(ref.name, ref.group, ref.kind, ref.namespace, ref.section_name, ref.port)
        out.append(RouteParentStatus(status_ref, CONTROLLER_NAME, conditions))
    out.sort(key=lambda s: parent_ref_string(
        ParentReference(s.parent_ref.name, s.parent_ref.group, s.parent_ref.kind, s.parent_ref.namespace,
                        s.parent_ref.section_name, s.parent_ref.port), namespace), reverse=True)
    return tuple(out)
