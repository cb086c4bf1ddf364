"""VirtualService HTTPMatchRequest -> Envoy RouteMatch (Istio's mapping)."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from controlplane.model.common import StringMatch
from controlplane.model.labels import selector_matches
from controlplane.model.virtual_service import HTTPMatchRequest


def string_matcher(m: StringMatch | None, ignore_case: bool = False) -> string_pb2.StringMatcher | None:
    """Istio StringMatch -> StringMatcher; None for an empty match (presence only)."""
    if m is None:
        return None
    if m.exact is not None:
        return string_pb2.StringMatcher(exact=m.exact, ignore_case=ignore_case)
    if m.prefix is not None:
        return string_pb2.StringMatcher(prefix=m.prefix, ignore_case=ignore_case)
    if m.regex is not None:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=m.regex))
    return None


def header_matcher(name: str, m: StringMatch | None, invert: bool = False) -> rc.HeaderMatcher:
    hm = rc.HeaderMatcher(name=name, invert_match=invert)
    sm = string_matcher(m)
    if sm is None:
        hm.present_match = True
    else:
        hm.string_match.CopyFrom(sm)
    return hm


def route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    """One HTTPMatchRequest (or None: match everything)."""
    rm = rc.RouteMatch()
    uri = match.uri if match is not None else None
    if uri is None or (uri.exact is None and uri.prefix is None and uri.regex is None):
        rm.prefix = "/"
    elif uri.exact is not None:
        rm.path = uri.exact
    elif uri.prefix is not None:
        rm.prefix = uri.prefix
    else:
        rm.safe_regex.regex = uri.regex
    if match is None:
        return rm
    if match.ignore_uri_case:
        rm.case_sensitive.value = False
    for pseudo, value in ((":authority", match.authority), (":method", match.method), (":scheme", match.scheme)):
        if value is not None:
            rm.headers.append(header_matcher(pseudo, value))
    for name in sorted(match.headers):
        rm.headers.append(header_matcher(name, match.headers[name]))
    for name in sorted(match.without_headers):
        rm.headers.append(header_matcher(name, match.without_headers[name], invert=True))
    for name in sorted(match.query_params):
        qm = rc.QueryParameterMatcher(name=name)
        sm = string_matcher(match.query_params[name])
        if sm is None:
            qm.present_match = True
        else:
            qm.string_match.CopyFrom(sm)
        rm.query_parameters.append(qm)
    return rm


def names_gateway(gateways: tuple[str, ...], gateway: str, vs_namespace: str) -> bool:
    """Does a match's ``gateways`` list name ``gateway`` (``mesh`` or ``namespace/name``)? A
    short name is a Gateway of the VirtualService's namespace."""
    return any(g == gateway or ("/" not in g and f"{vs_namespace}/{g}" == gateway) for g in gateways)


def applies_to_proxy(
    match: HTTPMatchRequest | None, port: int, labels: dict[str, str], namespace: str,
    gateway: str = "mesh", vs_namespace: str = "",
) -> bool:
    """Parts of a match Envoy cannot test, decided while building: port, sourceLabels,
    sourceNamespace and gateways (sidecars are the ``mesh`` gateway; a router builds the
    routes of each Gateway it serves, ``namespace/name``, apart)."""
    if match is None:
        return True
    if match.port and match.port != port:
        return False
    if not selector_matches(match.source_labels, labels):
        return False
    if match.source_namespace and match.source_namespace != namespace:
        return False
    if match.gateways and not names_gateway(match.gateways, gateway, vs_namespace):
        return False
    return True
