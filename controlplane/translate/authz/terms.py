"""One attribute of a rule with its values and notValues (Istio's ``model.rule``), and the
RBAC combinators for permissions (``to`` and destination conditions) and principals (``from``
and source conditions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from envoy.config.rbac.v3.rbac_pb2 import Permission, Principal

M = TypeVar("M", Permission, Principal)


@dataclass(frozen=True, slots=True)
class Term(Generic[M]):
    """``values`` OR-ed, and none of ``not_values``. ``one`` builds the matcher of one value
    (OR-ed by the caller), ``many`` the matcher of all values at once (Istio's "extended"
    generators: JWT claims, request principals, Envoy metadata). Either raises
    ``matchers.Unsupported`` for what the chain cannot express."""

    key: str
    values: tuple[str, ...]
    not_values: tuple[str, ...]
    one: Callable[[str], M] | None = None
    many: Callable[[tuple[str, ...]], M] | None = None
    http_only: bool = False

    def __bool__(self) -> bool:
        return bool(self.values or self.not_values)


# --- permissions ---------------------------------------------------------------------------


def permission_any() -> Permission:
    return Permission(any=True)


def permission_or(items: Sequence[Permission]) -> Permission:
    out = Permission()
    out.or_rules.rules.extend(items)
    return out


def permission_and(items: Sequence[Permission]) -> Permission:
    out = Permission()
    out.and_rules.rules.extend(items)
    return out


def permission_not(item: Permission) -> Permission:
    out = Permission()
    out.not_rule.CopyFrom(item)
    return out


# --- principals ----------------------------------------------------------------------------


def principal_any() -> Principal:
    return Principal(any=True)


def principal_or(items: Sequence[Principal]) -> Principal:
    out = Principal()
    out.or_ids.ids.extend(items)
    return out


def principal_and(items: Sequence[Principal]) -> Principal:
    out = Principal()
    out.and_ids.ids.extend(items)
    return out


def principal_not(item: Principal) -> Principal:
    out = Principal()
    out.not_id.CopyFrom(item)
    return out


@dataclass(frozen=True, slots=True)
class Combinators(Generic[M]):
    any: Callable[[], M]
    or_: Callable[[Sequence[M]], M]
    and_: Callable[[Sequence[M]], M]
    not_: Callable[[M], M]


PERMISSIONS: Combinators[Permission] = Combinators(permission_any, permission_or, permission_and, permission_not)
PRINCIPALS: Combinators[Principal] = Combinators(principal_any, principal_or, principal_and, principal_not)
