"""Who is asking: ``from.source`` fields and the source-side ``when`` keys as RBAC principals
(Istio's srcPrincipal, srcNamespace, srcServiceAccount, srcIP, remoteIP, requestPrincipal,
requestHeader, requestClaim, requestAudiences and requestPresenter generators).

Peer identities come from the mTLS certificate (``authenticated``), so they only ever match
on mTLS connections; request identities come from the jwt_authn filter's metadata.
"""

from __future__ import annotations

from functools import partial

from envoy.config.rbac.v3 import rbac_pb2
from envoy.type.matcher.v3 import string_pb2

from controlplane.model.security import Source
from controlplane.translate.authz import matchers as m
from controlplane.translate.authz.terms import Principal, Term, principal_and, principal_or
from controlplane.translate.authz.trust_domain import TrustDomainBundle


def authenticated(matcher: string_pb2.StringMatcher) -> Principal:
    return Principal(authenticated=rbac_pb2.Principal.Authenticated(principal_name=matcher))


def peer_principal(value: str) -> Principal:
    """``<trust domain>/ns/<ns>/sa/<sa>`` (globs allowed) against the peer's SPIFFE ID."""
    return authenticated(m.string_matcher(value, m.SPIFFE_PREFIX))


def peer_namespace(value: str) -> Principal:
    return authenticated(m.regex(f".*/ns/{m.glob_regex(value)}/.*"))


def service_account(policy_namespace: str, value: str) -> Principal:
    """``<sa>`` (in the policy's namespace) or ``<ns>/<sa>``."""
    namespace, slash, name = value.partition("/")
    if not slash:
        namespace, name = policy_namespace, value
    return authenticated(m.regex(f"spiffe://.+/ns/{namespace}/(.+/|)sa/{name}(/.+)?"))


def trust_domain(value: str) -> Principal:
    """Any identity of the trust domain ``value`` (a glob)."""
    if value == "*":
        return authenticated(m.regex(m.ANY_VALUE))
    if "*" in value:
        return authenticated(m.regex(m.SPIFFE_PREFIX + m.glob_regex(value, "[^/]*") + "/.*"))
    return authenticated(m.prefix(f"{m.SPIFFE_PREFIX}{value}/"))


def direct_remote_ip(value: str) -> Principal:
    return Principal(direct_remote_ip=m.cidr(value))


def remote_ip(value: str) -> Principal:
    return Principal(remote_ip=m.cidr(value))


def _jwt(claim: str, matcher: string_pb2.StringMatcher) -> Principal:
    return Principal(metadata=m.jwt_claim([claim], m.string_value(matcher)))


_ANY = m.regex(m.ANY_VALUE)


def _issuer_subject(value: str) -> tuple[string_pb2.StringMatcher, string_pb2.StringMatcher]:
    """Istio's requestPrincipal split: ``iss/sub`` at the last ``/`` (issuers are URLs)."""
    iss, slash, sub = value.rpartition("/")
    found = bool(slash)
    if not found:
        iss, sub = value, ""
    if value == "*":
        return _ANY, _ANY
    if value.startswith("*"):
        if found:
            return (_ANY if iss == "*" else m.suffix(iss[1:])), m.exact(sub)
        return _ANY, m.suffix(value[1:])
    if value.endswith("*"):
        if found:
            return m.exact(iss), (_ANY if sub == "*" else m.prefix(sub[:-1]))
        return m.prefix(value[:-1]), _ANY
    return m.exact(iss), m.exact(sub)


def request_principals(values: tuple[str, ...]) -> Principal:
    """``iss/sub`` of the verified JWT: ``jwt_payload.iss`` and ``jwt_payload.sub``."""
    ids = []
    for value in values:
        iss, sub = _issuer_subject(value)
        ids.append(principal_and([_jwt("iss", iss), _jwt("sub", sub)]))
    return ids[0] if len(ids) == 1 else principal_or(ids)


def jwt_claims(path: list[str], values: tuple[str, ...]) -> Principal:
    """A claim (string or list of strings) holding one of ``values``."""
    return Principal(metadata=m.jwt_claim(path, m.list_or_string(m.string_or(values))))


def request_header(name: str, value: str) -> Principal:
    return Principal(header=m.header_matcher(name, value))


def source_terms(source: Source, policy_namespace: str, bundle: TrustDomainBundle) -> list[Term[Principal]]:
    """The terms of one ``from.source``, in Istio's order."""
    s = source
    return [t for t in (
        Term("source.principal", bundle.expand(s.principals), bundle.expand(s.not_principals), one=peer_principal),
        Term("source.trustDomain", s.trust_domains, s.not_trust_domains, one=trust_domain),
        Term("request.auth.principal", s.request_principals, s.not_request_principals,
             many=request_principals, http_only=True),
        Term("source.serviceAccount", s.service_accounts, s.not_service_accounts,
             one=partial(service_account, policy_namespace)),
        Term("source.namespace", s.namespaces, s.not_namespaces, one=peer_namespace),
        Term("remote.ip", s.remote_ip_blocks, s.not_remote_ip_blocks, one=remote_ip),
        Term("source.ip", s.ip_blocks, s.not_ip_blocks, one=direct_remote_ip),
    ) if t]  # fmt: skip
