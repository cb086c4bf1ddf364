"""One rule of an AuthorizationPolicy -> one RBAC policy (Istio's ``authz/model``).

A rule matches when one of its ``from`` (principals) and one of its ``to`` (permissions) match
and every ``when`` holds; an absent ``from``/``to`` and a rule with no fields match everything.

What a chain cannot express (HTTP-only fields such as paths, methods, hosts, request
principals, headers and JWT claims on a TCP chain) follows Istio: in an ALLOW policy the rule
is dropped (it allows less); in a DENY or AUDIT policy the unsupported values are left out of
the rule (it matches more: a DENY rule on ``methods: [GET]`` with ``ports: [80]`` denies all
of port 80 on TCP).
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.rbac.v3 import rbac_pb2

from controlplane.model.security import Rule
from controlplane.translate.authz.conditions import UnknownAttribute, condition_terms
from controlplane.translate.authz.matchers import Unsupported
from controlplane.translate.authz.operations import operation_terms
from controlplane.translate.authz.sources import source_terms
from controlplane.translate.authz.terms import (
    PERMISSIONS,
    PRINCIPALS,
    Combinators,
    M,
    Permission,
    Principal,
    Term,
)
from controlplane.translate.authz.trust_domain import TrustDomainBundle


class RuleSkipped(Exception):
    """The rule cannot be expressed on this chain and, in an ALLOW policy, is left out."""


def _or_of(term: Term[M], values: tuple[str, ...], kind: Combinators[M], tcp: bool, strict: bool) -> M | None:
    """The OR of ``values``; None when nothing is left of them."""
    try:
        if term.http_only and tcp:
            raise Unsupported(f"{term.key!r} is HTTP only")
        if term.many is not None:
            return term.many(values)
        assert term.one is not None
        items: list[M] = []
        for value in values:
            try:
                items.append(term.one(value))
            except Unsupported:
                if strict:
                    raise
        return kind.or_(items) if items else None
    except Unsupported as exc:
        if strict:
            raise RuleSkipped(str(exc)) from exc
        return None


def _term(term: Term[M], kind: Combinators[M], tcp: bool, strict: bool) -> list[M]:
    out: list[M] = []
    for values, negate in ((term.values, False), (term.not_values, True)):
        if values and (matcher := _or_of(term, values, kind, tcp, strict)) is not None:
            out.append(kind.not_(matcher) if negate else matcher)
    return out


def _conjunction(terms: Sequence[Term[M]], kind: Combinators[M], tcp: bool, strict: bool) -> M:
    parts: list[M] = []
    for term in terms:
        parts.extend(_term(term, kind, tcp, strict))
    return kind.and_(parts or [kind.any()])


def rule_policy(
    rule: Rule, policy_namespace: str, *, tcp: bool, strict: bool, bundle: TrustDomainBundle
) -> rbac_pb2.Policy | None:
    """The RBAC policy of ``rule``; None when the rule is left out (an unknown ``when`` key,
    or, with ``strict`` (ALLOW), something the chain cannot express)."""
    try:
        when = condition_terms(rule.when, policy_namespace, bundle)
    except UnknownAttribute:
        return None
    principal_sets: list[list[Term[Principal]]] = [
        source_terms(f.source, policy_namespace, bundle) + when.principals if f.source is not None else when.principals
        for f in rule.from_
    ] or [when.principals]
    permission_sets: list[list[Term[Permission]]] = [
        operation_terms(t.operation) + when.permissions if t.operation is not None else when.permissions
        for t in rule.to
    ] or [when.permissions]
    try:
        permissions = [_conjunction(terms, PERMISSIONS, tcp, strict) for terms in permission_sets]
        principals = [_conjunction(terms, PRINCIPALS, tcp, strict) for terms in principal_sets]
    except RuleSkipped:
        return None
    return rbac_pb2.Policy(permissions=permissions, principals=principals)


def match_never() -> rbac_pb2.Policy:
    """The policy of an ALLOW (or AUDIT) policy without rules: it matches no request."""
    return rbac_pb2.Policy(
        permissions=[Permission(not_rule=Permission(any=True))],
        principals=[Principal(not_id=Principal(any=True))],
    )
