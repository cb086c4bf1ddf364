"""Envoy matchers the way Istio's ``authz/matcher`` package writes them.

A value of an AuthorizationPolicy field is a glob with at most a leading or trailing ``*``:
``*`` alone means "present (any non-empty value)", ``*x`` a suffix, ``x*`` a prefix, anything
else an exact match. Regexes are RE2 full matches (Envoy's ``safe_regex``).
"""

from __future__ import annotations

import ipaddress

from envoy.config.core.v3 import address_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import metadata_pb2, path_pb2, regex_pb2, string_pb2, value_pb2

SPIFFE_PREFIX = "spiffe://"
# The dynamic metadata that the jwt_authn filter writes (every provider sets
# ``payload_in_metadata: jwt_payload``); request.auth.* and requestPrincipals read it.
JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "jwt_payload"

_GO_META = set("\\.+*?()|[]{}^$")


class Unsupported(ValueError):
    """A value that cannot be expressed here (an HTTP-only field on a TCP chain, a bad port or
    address): Istio drops the whole rule of an ALLOW policy, and only the value otherwise."""


def quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: the RE2 regex that matches ``text`` literally."""
    return "".join("\\" + c if c in _GO_META else c for c in text)


def glob_regex(value: str, star: str = ".*") -> str:
    """``value`` with every ``*`` standing for ``star`` and the rest literal."""
    return star.join(quote_meta(part) for part in value.split("*"))


def regex(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def exact(value: str, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(exact=value, ignore_case=ignore_case)


def prefix(value: str, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(prefix=value, ignore_case=ignore_case)


def suffix(value: str, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(suffix=value, ignore_case=ignore_case)


ANY_VALUE = ".+"


def string_matcher(value: str, prepend: str = "") -> string_pb2.StringMatcher:
    """Istio's StringMatcherWithPrefix: ``prepend`` goes before the value, except for ``*``
    (any non-empty string, whatever the prefix)."""
    if value == "*":
        return regex(ANY_VALUE)
    if value.startswith("*"):
        if not prepend:
            return suffix(value[1:])
        return regex(prepend + ".*" + quote_meta(value[1:]))
    if value.endswith("*"):
        return prefix(prepend + value[:-1])
    return exact(prepend + value)


def header_matcher(name: str, value: str, ignore_case: bool = False) -> rc.HeaderMatcher:
    """Istio's HeaderMatcher (HostMatcher with ``ignore_case``): ``*`` is presence."""
    if value == "*":
        return rc.HeaderMatcher(name=name, present_match=True)
    if value.startswith("*"):
        return rc.HeaderMatcher(name=name, string_match=suffix(value[1:], ignore_case))
    if value.endswith("*"):
        return rc.HeaderMatcher(name=name, string_match=prefix(value[:-1], ignore_case))
    return rc.HeaderMatcher(name=name, string_match=exact(value, ignore_case))


def path_matcher(value: str) -> path_pb2.PathMatcher:
    return path_pb2.PathMatcher(path=string_matcher(value))


MATCH_ONE_TEMPLATE = "{*}"
MATCH_ANY_TEMPLATE = "{**}"


def is_path_template(value: str) -> bool:
    """Istio's ContainsPathTemplate: ``{*}`` (one segment) or ``{**}`` (any number)."""
    return MATCH_ONE_TEMPLATE in value or MATCH_ANY_TEMPLATE in value


def path_template(value: str) -> str:
    """An Envoy uri_template ``path_template``: ``{*}`` -> ``*``, ``{**}`` -> ``**``."""
    return value.replace(MATCH_ANY_TEMPLATE, "**").replace(MATCH_ONE_TEMPLATE, "*")


def cidr(value: str) -> address_pb2.CidrRange:
    """An address or CIDR as Envoy's CidrRange (a bare address is /32 or /128)."""
    address, _, length = value.partition("/")
    try:
        ip = ipaddress.ip_address(address)
        bits = int(length) if length else ip.max_prefixlen
    except ValueError as exc:
        raise Unsupported(f"invalid address {value!r}") from exc
    if not 0 <= bits <= ip.max_prefixlen:
        raise Unsupported(f"invalid prefix length in {value!r}")
    return address_pb2.CidrRange(address_prefix=address, prefix_len={"value": bits})


def port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise Unsupported(f"invalid port {value!r}")
    return int(value)


def metadata(filter_name: str, path: list[str], value: value_pb2.ValueMatcher) -> metadata_pb2.MetadataMatcher:
    out = metadata_pb2.MetadataMatcher(filter=filter_name, value=value)
    for key in path:
        out.path.add(key=key)
    return out


def string_value(m: string_pb2.StringMatcher) -> value_pb2.ValueMatcher:
    return value_pb2.ValueMatcher(string_match=m)


def or_values(matchers: list[value_pb2.ValueMatcher]) -> value_pb2.ValueMatcher:
    """One matcher, or an ``or_match`` of several."""
    if len(matchers) == 1:
        return matchers[0]
    out = value_pb2.ValueMatcher()
    out.or_match.value_matchers.extend(matchers)
    return out


def string_or(values: tuple[str, ...]) -> value_pb2.ValueMatcher:
    """Istio's StringOrMatcher: any of ``values`` (each a glob)."""
    return or_values([string_value(string_matcher(v)) for v in values])


def list_one_of(m: value_pb2.ValueMatcher) -> value_pb2.ValueMatcher:
    """A list that holds an item matching ``m``."""
    out = value_pb2.ValueMatcher()
    out.list_match.one_of.CopyFrom(m)
    return out


def list_or_string(m: value_pb2.ValueMatcher) -> value_pb2.ValueMatcher:
    """A claim that may be a string or a list of strings: the list holds a match, or the
    value itself matches (Istio's MetadataListValueMatcherForJWTClaims)."""
    return or_values([list_one_of(m), m])


def jwt_claim(claim_path: list[str], value: value_pb2.ValueMatcher) -> metadata_pb2.MetadataMatcher:
    """A match on the verified JWT payload: ``jwt_payload.<claim>...`` of jwt_authn."""
    return metadata(JWT_FILTER, [JWT_PAYLOAD, *claim_path], value)
