"""ReferenceGrant: which cross-namespace references are allowed (Istio's ReferenceGrants).

A grant in namespace N lets objects of a kind in namespace F refer to objects of a kind in N
(all of them, or named ones). Kinds not listed here are ignored, as Istio ignores them: a
grant may be meant for another controller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controlplane.model.gateway_api import GROUP, ReferenceGrant

_FROM_KINDS = frozenset({"Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute"})
_TO_KINDS = frozenset({"Secret", "Service", "ConfigMap"})

# (from kind, from namespace, to kind, to namespace) -> allowed names; None allows all
GrantKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class ReferenceGrants:
    grants: Mapping[GrantKey, frozenset[str] | None] = field(default_factory=dict)

    def allows(self, from_kind: str, from_namespace: str, to_kind: str, to_namespace: str, name: str) -> bool:
        if from_namespace == to_namespace:
            return True
        names = self.grants.get((from_kind, from_namespace, to_kind, to_namespace), frozenset())
        return names is None or name in names


def build_reference_grants(grants: Iterable[ReferenceGrant]) -> ReferenceGrants:
    out: dict[GrantKey, set[str] | None] = {}
    for grant in grants:
        for source in grant.spec.from_:
            if source.group != GROUP or source.kind not in _FROM_KINDS:
                continue
            for target in grant.spec.to:
                if target.group not in ("", "core") or target.kind not in _TO_KINDS:
                    continue
                key = (source.kind, source.namespace, target.kind, grant.meta.namespace)
                if target.name is None:
                    out[key] = None
                elif (names := out.setdefault(key, set())) is not None:
                    names.add(target.name)
    return ReferenceGrants({k: None if v is None else frozenset(v) for k, v in out.items()})
