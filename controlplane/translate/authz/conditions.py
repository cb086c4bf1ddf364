"""``when`` conditions: each key becomes a permission term (about the destination) or a
principal term (about the source), as Istio's ``model.New`` sorts them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from controlplane.model.security import Condition
from controlplane.translate.authz import operations as ops
from controlplane.translate.authz import sources as src
from controlplane.translate.authz.terms import Permission, Principal, Term
from controlplane.translate.authz.trust_domain import TrustDomainBundle

HEADERS = "request.headers"
CLAIMS = "request.auth.claims"
ENVOY_FILTERS = "experimental.envoy.filters."


class UnknownAttribute(ValueError):
    """A ``when`` key Istio does not know: the rule is skipped."""


def _bracketed(text: str) -> str:
    if not (text.startswith("[") and text.endswith("]")) or len(text) < 3:
        raise UnknownAttribute(f"expecting [<NAME>], found {text!r}")
    return text[1:-1]


def _nested(text: str) -> list[str]:
    """``[a][b]`` -> ``["a", "b"]``."""
    return _bracketed(text).split("][")


@dataclass(frozen=True, slots=True)
class ConditionTerms:
    permissions: list[Term[Permission]]
    principals: list[Term[Principal]]


def condition_terms(
    conditions: tuple[Condition, ...], policy_namespace: str, bundle: TrustDomainBundle
) -> ConditionTerms:
    out = ConditionTerms([], [])
    for c in conditions:
        k, v, nv = c.key, c.values, c.not_values
        if k == "destination.ip":
            out.permissions.append(Term(k, v, nv, one=ops.destination_ip))
        elif k == "destination.port":
            out.permissions.append(Term(k, v, nv, one=ops.destination_port))
        elif k == "connection.sni":
            out.permissions.append(Term(k, v, nv, one=ops.server_name))
        elif k.startswith(ENVOY_FILTERS):
            out.permissions.append(Term(k, v, nv, many=partial(ops.envoy_metadata, k)))
        elif k == "source.ip":
            out.principals.append(Term(k, v, nv, one=src.direct_remote_ip))
        elif k == "remote.ip":
            out.principals.append(Term(k, v, nv, one=src.remote_ip))
        elif k == "source.namespace":
            out.principals.append(Term(k, v, nv, one=src.peer_namespace))
        elif k == "source.serviceAccount":
            out.principals.append(Term(k, v, nv, one=partial(src.service_account, policy_namespace)))
        elif k == "source.principal":
            out.principals.append(Term(k, bundle.expand(v), bundle.expand(nv), one=src.peer_principal))
        elif k == "source.trustDomain":
            out.principals.append(Term(k, v, nv, one=src.trust_domain))
        elif k == "request.auth.principal":
            out.principals.append(Term(k, v, nv, many=src.request_principals, http_only=True))
        elif k == "request.auth.audiences":
            out.principals.append(Term(k, v, nv, many=partial(src.jwt_claims, ["aud"]), http_only=True))
        elif k == "request.auth.presenter":
            out.principals.append(Term(k, v, nv, many=partial(src.jwt_claims, ["azp"]), http_only=True))
        elif k.startswith(HEADERS):
            name = _bracketed(k.removeprefix(HEADERS))
            out.principals.append(Term(k, v, nv, one=partial(src.request_header, name), http_only=True))
        elif k.startswith(CLAIMS):
            path = _nested(k.removeprefix(CLAIMS))
            out.principals.append(Term(k, v, nv, many=partial(src.jwt_claims, path), http_only=True))
        else:
            raise UnknownAttribute(f"unknown attribute {k}")
    return ConditionTerms([t for t in out.permissions if t], [t for t in out.principals if t])
