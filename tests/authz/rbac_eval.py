"""An evaluator of Envoy's RBAC semantics (``envoy.config.rbac.v3``), for tests: given an RBAC
config (HTTP or network filter) and a request, what does Envoy decide?

It follows Envoy's matchers: permissions (headers, url_path, uri_template, destination
ip/port, requested server name, metadata), principals (authenticated peer SPIFFE ID, direct
and remote ip, headers, metadata), the engine (ALLOW: some policy matches; DENY: none does;
LOG: never blocks) and a chain of RBAC filters (the first refusal ends the request; shadow
rules are evaluated and reported, never enforced).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from envoy.config.core.v3 import address_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import metadata_pb2, string_pb2, value_pb2

RBAC = rbac_pb2.RBAC
JWT_FILTER = "envoy.filters.http.jwt_authn"


@dataclass(frozen=True)
class Request:
    """What Envoy knows of a request (or, with no HTTP headers, of a TCP connection).

    ``principal``: the peer certificate's URI SAN (None on a plaintext connection);
    ``headers``: lower-case names, with the pseudo-headers ``:method``, ``:path``, ``:authority``;
    ``jwt``: the verified JWT payload (None without a token); ``metadata``: other dynamic
    metadata, filter name -> struct."""

    principal: str | None = None
    source_ip: str = "10.0.0.1"
    remote_ip: str = ""  # the original client (x-forwarded-for); "" = source_ip
    destination_ip: str = "10.0.0.2"
    port: int = 80
    sni: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    jwt: Mapping[str, Any] | None = None
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def dynamic_metadata(self, jwt_key: str) -> dict[str, Any]:
        """Dynamic metadata with the JWT payload where jwt_authn puts it under ``jwt_key``."""
        out: dict[str, Any] = {k: dict(v) for k, v in self.metadata.items()}
        if self.jwt is not None:
            out.setdefault(JWT_FILTER, {})[jwt_key] = self.jwt
        return out


@dataclass(frozen=True)
class Context:
    request: Request
    metadata: Mapping[str, Any]

    @property
    def path(self) -> str | None:
        raw = self.request.headers.get(":path")
        if raw is None:
            return None
        return re.split(r"[?#]", raw, maxsplit=1)[0]


# --- string and value matchers ----------------------------------------------------------------


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def string_matches(m: string_pb2.StringMatcher, value: str) -> bool:
    kind = m.WhichOneof("match_pattern")
    if kind == "safe_regex":
        return _regex(m.safe_regex.regex).fullmatch(value) is not None
    target = getattr(m, kind)
    if m.ignore_case:
        value, target = value.lower(), target.lower()
    if kind == "exact":
        return value == target
    if kind == "prefix":
        return value.startswith(target)
    if kind == "suffix":
        return value.endswith(target)
    if kind == "contains":
        return target in value
    raise NotImplementedError(kind)


_ABSENT = object()


def value_matches(m: value_pb2.ValueMatcher, value: Any) -> bool:
    kind = m.WhichOneof("match_pattern")
    if kind == "null_match":
        return value is None
    if kind == "present_match":
        return value is not _ABSENT and value is not None
    if kind == "string_match":
        return isinstance(value, str) and string_matches(m.string_match, value)
    if kind == "bool_match":
        return isinstance(value, bool) and value == m.bool_match
    if kind == "double_match":
        return isinstance(value, int | float) and not isinstance(value, bool) and value == m.double_match.exact
    if kind == "list_match":
        return isinstance(value, list) and any(value_matches(m.list_match.one_of, v) for v in value)
    if kind == "or_match":
        return any(value_matches(v, value) for v in m.or_match.value_matchers)
    raise NotImplementedError(kind)


def metadata_matches(m: metadata_pb2.MetadataMatcher, metadata: Mapping[str, Any]) -> bool:
    value: Any = metadata.get(m.filter, _ABSENT)
    for segment in m.path:
        value = value.get(segment.key, _ABSENT) if isinstance(value, Mapping) else _ABSENT
    matched = value is not _ABSENT and value_matches(m.value, value)
    return matched != m.invert


def header_matches(m: rc.HeaderMatcher, headers: Mapping[str, str]) -> bool:
    value = headers.get(m.name.lower())
    if value is None and m.treat_missing_header_as_empty:
        value = ""
    kind = m.WhichOneof("header_match_specifier")
    if value is None:
        matched = False
    elif kind == "present_match":
        matched = m.present_match
    elif kind == "string_match":
        matched = string_matches(m.string_match, value)
    elif kind == "safe_regex_match":
        matched = _regex(m.safe_regex_match.regex).fullmatch(value) is not None
    elif kind == "exact_match":
        matched = value == m.exact_match
    elif kind == "prefix_match":
        matched = value.startswith(m.prefix_match)
    elif kind == "suffix_match":
        matched = value.endswith(m.suffix_match)
    elif kind is None:
        matched = True
    else:
        raise NotImplementedError(kind)
    return matched != m.invert_match


def cidr_contains(c: address_pb2.CidrRange, address: str) -> bool:
    network = ipaddress.ip_network(f"{c.address_prefix}/{c.prefix_len.value}", strict=False)
    ip = ipaddress.ip_address(address)
    return ip.version == network.version and ip in network


# Envoy's uri_template: `*` one path segment, `**` any number of them (path characters).
_SEGMENT = r"[a-zA-Z0-9\-._~%!$&'()+,;:@=]+"
_SEGMENTS = r"[a-zA-Z0-9\-._~%!$&'()+,;:@=/]*"


@lru_cache(maxsize=1024)
def _template_regex(template: str) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(\*\*|\*)", template):
        out.append(_SEGMENTS if part == "**" else _SEGMENT if part == "*" else re.escape(part))
    return re.compile("".join(out))


def uri_template_matches(config: Any, path: str | None) -> bool:
    if path is None:
        return False
    tpl = uri_template_match_pb2.UriTemplateMatchConfig()
    config.typed_config.Unpack(tpl)
    return _template_regex(tpl.path_template).fullmatch(path) is not None


# --- permissions and principals ---------------------------------------------------------------


def permission_matches(p: rbac_pb2.Permission, ctx: Context) -> bool:
    kind = p.WhichOneof("rule")
    r = ctx.request
    if kind == "any":
        return p.any
    if kind == "and_rules":
        return all(permission_matches(x, ctx) for x in p.and_rules.rules)
    if kind == "or_rules":
        return any(permission_matches(x, ctx) for x in p.or_rules.rules)
    if kind == "not_rule":
        return not permission_matches(p.not_rule, ctx)
    if kind == "header":
        return header_matches(p.header, r.headers)
    if kind == "url_path":
        return ctx.path is not None and string_matches(p.url_path.path, ctx.path)
    if kind == "uri_template":
        return uri_template_matches(p.uri_template, ctx.path)
    if kind == "destination_ip":
        return cidr_contains(p.destination_ip, r.destination_ip)
    if kind == "destination_port":
        return r.port == p.destination_port
    if kind == "destination_port_range":
        return p.destination_port_range.start <= r.port < p.destination_port_range.end
    if kind == "requested_server_name":
        return string_matches(p.requested_server_name, r.sni)
    if kind == "metadata":
        return metadata_matches(p.metadata, ctx.metadata)
    raise NotImplementedError(kind)


def principal_matches(p: rbac_pb2.Principal, ctx: Context) -> bool:
    kind = p.WhichOneof("identifier")
    r = ctx.request
    if kind == "any":
        return p.any
    if kind == "and_ids":
        return all(principal_matches(x, ctx) for x in p.and_ids.ids)
    if kind == "or_ids":
        return any(principal_matches(x, ctx) for x in p.or_ids.ids)
    if kind == "not_id":
        return not principal_matches(p.not_id, ctx)
    if kind == "authenticated":
        if r.principal is None:
            return False
        if not p.authenticated.HasField("principal_name"):
            return True
        return string_matches(p.authenticated.principal_name, r.principal)
    if kind in ("direct_remote_ip", "source_ip"):
        return cidr_contains(getattr(p, kind), r.source_ip)
    if kind == "remote_ip":
        return cidr_contains(p.remote_ip, r.remote_ip or r.source_ip)
    if kind == "header":
        return header_matches(p.header, r.headers)
    if kind == "url_path":
        return ctx.path is not None and string_matches(p.url_path.path, ctx.path)
    if kind == "metadata":
        return metadata_matches(p.metadata, ctx.metadata)
    raise NotImplementedError(kind)


def policy_matches(policy: rbac_pb2.Policy, ctx: Context) -> bool:
    return any(permission_matches(p, ctx) for p in policy.permissions) and any(
        principal_matches(p, ctx) for p in policy.principals
    )


def matched(rbac: rbac_pb2.RBAC, ctx: Context) -> set[str]:
    return {name for name, policy in rbac.policies.items() if policy_matches(policy, ctx)}


def engine_allows(rbac: rbac_pb2.RBAC, ctx: Context) -> bool:
    if rbac.action == RBAC.ALLOW:
        return bool(matched(rbac, ctx))
    if rbac.action == RBAC.DENY:
        return not matched(rbac, ctx)
    return True  # LOG


# --- a chain of RBAC filters ------------------------------------------------------------------

FilterConfig = http_rbac_pb2.RBAC | network_rbac_pb2.RBAC
_ACTION_NAMES = {RBAC.ALLOW: "ALLOW", RBAC.DENY: "DENY", RBAC.LOG: "LOG"}


@dataclass(frozen=True)
class Outcome:
    """Envoy's decision, whether an AUDIT (LOG) policy marked the request, and what each
    dry-run (shadow) engine reached before the request ended: (action, allowed) pairs."""

    allowed: bool
    logged: bool
    shadow: tuple[tuple[str, bool], ...]


def evaluate(chain: Iterable[FilterConfig], request: Request, jwt_key: str) -> Outcome:
    ctx = Context(request, request.dynamic_metadata(jwt_key))
    logged = False
    shadow: list[tuple[str, bool]] = []
    for config in chain:
        if config.HasField("shadow_rules"):
            shadow.append((_ACTION_NAMES[config.shadow_rules.action], engine_allows(config.shadow_rules, ctx)))
        if not config.HasField("rules"):
            continue
        if config.rules.action == RBAC.LOG:
            logged |= bool(matched(config.rules, ctx))
        elif not engine_allows(config.rules, ctx):
            return Outcome(False, logged, tuple(sorted(shadow)))
    return Outcome(True, logged, tuple(sorted(shadow)))


def any_policy_matches(chain: Iterable[FilterConfig], request: Request, jwt_key: str) -> bool:
    """Does some policy of the chain (rules or shadow rules) match? The decision part of a
    CUSTOM policy: whether the request is sent to the external authorizer."""
    ctx = Context(request, request.dynamic_metadata(jwt_key))
    for config in chain:
        for rbac in (config.rules, config.shadow_rules):
            if matched(rbac, ctx):
                return True
    return False


Detail = tuple[str, str, str, str, int, bool]


def details(chain: Iterable[FilterConfig], request: Request, jwt_key: str, rename: Any = None) -> frozenset[Detail]:
    """Every policy's parts, evaluated whatever the other filters decided: (rules or shadow,
    action, policy name, "permission" or "principal", index, matched). Permissions follow a
    rule's ``to`` entries and principals its ``from`` entries, so two translations of one rule
    agree entry by entry. ``rename`` maps policy names (e.g. to drop a prefix)."""
    ctx = Context(request, request.dynamic_metadata(jwt_key))
    out: set[Detail] = set()
    for config in chain:
        for kind, rbac in (("rules", config.rules), ("shadow", config.shadow_rules)):
            action = _ACTION_NAMES[rbac.action]
            for name, policy in rbac.policies.items():
                label = rename(name) if rename is not None else name
                out.update((kind, action, label, "permission", i, permission_matches(p, ctx))
                           for i, p in enumerate(policy.permissions))
                out.update((kind, action, label, "principal", i, principal_matches(p, ctx))
                           for i, p in enumerate(policy.principals))
    return frozenset(out)
