"""The policy part of the index, and which workload policies apply to a proxy: Istio's root namespace -> namespace -> workload.

One rule for every policy kind that carries a ``selector`` (PeerAuthentication, Telemetry,
and AuthorizationPolicy, RequestAuthentication, EnvoyFilter next):
- mesh level: policies in the root namespace without a selector;
- namespace level: policies in the proxy's namespace without a selector (none when the
  proxy's namespace is the root namespace: its selector-less policies are mesh level);
- workload level: policies in the proxy's namespace whose selector matches its labels, and,
  where the kind says so (AuthorizationPolicy, RequestAuthentication in Istio), policies in
  the root namespace whose selector matches, whatever the proxy's namespace.

Policies that name ``targetRef(s)`` attach to gateways or services, not to workloads by
selector: callers leave them out of a ``PolicySet``. Within a level, policies keep the store's order (by
name), which stands in for Istio's "oldest first" as the input carries no creation time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from controlplane.model.base import ObjectMeta
from controlplane.model.common import WorkloadSelector
from controlplane.model.labels import selector_labels as _selector_labels
from controlplane.model.labels import selector_matches
from controlplane.model.security import (
    AuthorizationPolicy,
    PeerAuthentication,
    RequestAuthentication,
)
from controlplane.model.telemetry import Telemetry
from controlplane.translate.index.service_index import Snapshot


class _Spec(Protocol):
    @property
    def selector(self) -> WorkloadSelector | None: ...


class _Policy(Protocol):
    @property
    def meta(self) -> ObjectMeta: ...
    @property
    def spec(self) -> _Spec: ...


P = TypeVar("P", bound=_Policy)


def selector_labels(policy: _Policy) -> dict[str, str]:
    """A policy's ``selector.matchLabels``; empty: the policy selects no workload by labels."""
    return dict(_selector_labels(policy.spec.selector))


@dataclass(frozen=True, slots=True)
class Applicable(Generic[P]):
    """The policies of one kind that apply to one workload, by level."""

    mesh: tuple[P, ...] = ()
    namespace: tuple[P, ...] = ()
    workload: tuple[P, ...] = ()

    def first_per_level(self) -> tuple[P | None, P | None, P | None]:
        """Kinds where one policy per level wins (PeerAuthentication, Telemetry)."""
        return (
            self.mesh[0] if self.mesh else None,
            self.namespace[0] if self.namespace else None,
            self.workload[0] if self.workload else None,
        )

    def all(self) -> tuple[P, ...]:
        """Kinds where every applicable policy counts (AuthorizationPolicy), least specific first."""
        return self.mesh + self.namespace + self.workload


@dataclass(frozen=True, slots=True)
class PolicySet(Generic[P]):
    """One policy kind, indexed by namespace."""

    by_namespace: Mapping[str, tuple[P, ...]]
    # Do root-namespace policies with a selector apply to matching workloads everywhere?
    root_selectors_mesh_wide: bool = False

    @staticmethod
    def of(policies: Iterable[P], *, root_selectors_mesh_wide: bool = False) -> PolicySet[P]:
        by_ns: dict[str, list[P]] = {}
        for p in policies:
            by_ns.setdefault(p.meta.namespace, []).append(p)
        return PolicySet({ns: tuple(items) for ns, items in by_ns.items()}, root_selectors_mesh_wide)

    def __bool__(self) -> bool:
        return bool(self.by_namespace)

    def in_namespace(self, namespace: str) -> tuple[P, ...]:
        return self.by_namespace.get(namespace, ())

    def selects_by_labels(self, root_namespace: str, namespace: str) -> bool:
        """Does the choice for workloads in ``namespace`` depend on their labels?"""
        if any(selector_labels(p) for p in self.in_namespace(namespace)):
            return True
        return self.root_selectors_mesh_wide and any(
            selector_labels(p) for p in self.in_namespace(root_namespace)
        )

    def applicable(self, root_namespace: str, namespace: str, labels: Mapping[str, str] | None) -> Applicable[P]:
        """The policies for a workload in ``namespace`` with ``labels``; ``labels`` None:
        mesh and namespace levels only (what a service's namespace says, as auto mTLS asks)."""
        root = self.in_namespace(root_namespace)
        own = self.in_namespace(namespace)
        mesh = tuple(p for p in root if not selector_labels(p))
        ns_level = () if namespace == root_namespace else tuple(p for p in own if not selector_labels(p))
        workload: tuple[P, ...] = ()
        if labels is not None:
            label_map = dict(labels)
            candidates = own
            if self.root_selectors_mesh_wide and namespace != root_namespace:
                candidates = root + own
            workload = tuple(
                p for p in candidates if selector_labels(p) and selector_matches(selector_labels(p), label_map)
            )
        return Applicable(mesh, ns_level, workload)


@dataclass(frozen=True, slots=True)
class PolicyIndex:
    """The policy part of the index: one PolicySet per policy kind."""

    peer_authentications: PolicySet[PeerAuthentication] = field(default_factory=lambda: PolicySet({}))
    telemetries: PolicySet[Telemetry] = field(default_factory=lambda: PolicySet({}))
    request_authentications: PolicySet[RequestAuthentication] = field(default_factory=lambda: PolicySet({}))
    authorization_policies: PolicySet[AuthorizationPolicy] = field(default_factory=lambda: PolicySet({}))


def build_policy_index(snapshot: Snapshot) -> PolicyIndex:
    telemetries: list[Telemetry] = [
        t for t in snapshot.of_kind(Telemetry.KIND) if not (t.spec.target_ref or t.spec.target_refs)
    ]
    # targetRef(s) attach a RequestAuthentication to gateways, not to workloads by selector.
    request_authentications: list[RequestAuthentication] = [
        r for r in snapshot.of_kind(RequestAuthentication.KIND) if not (r.spec.target_ref or r.spec.target_refs)
    ]
    # targetRef(s) attach an AuthorizationPolicy to gateways and services, not to workloads.
    authorization_policies: list[AuthorizationPolicy] = [
        a for a in snapshot.of_kind(AuthorizationPolicy.KIND) if not (a.spec.target_ref or a.spec.target_refs)
    ]
    return PolicyIndex(
        peer_authentications=PolicySet.of(snapshot.of_kind(PeerAuthentication.KIND)),
        telemetries=PolicySet.of(telemetries),
        request_authentications=PolicySet.of(request_authentications, root_selectors_mesh_wide=True),
        authorization_policies=PolicySet.of(authorization_policies, root_selectors_mesh_wide=True),
    )


POLICY_KINDS = frozenset({"PeerAuthentication", "Telemetry", "RequestAuthentication", "AuthorizationPolicy"})
