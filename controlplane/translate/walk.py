"""Walk a request through generated config without Envoy (Istio's "simulation").

Given the dict translate() returns and a request, name the listener, filter chain,
virtual host, route and cluster (or weighted clusters, direct response, redirect) that
Envoy would pick, following Envoy's matching rules for the features we generate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf.message import Message

from controlplane.translate.translator import LISTENER_TYPE, ROUTE_TYPE


@dataclass(frozen=True)
class Request:
    port: int
    host: str = ""
    path: str = "/"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    address: str = ""  # destination IP; "" = any (the outbound VIP is not known)
    sni: str = ""  # TLS server name for tls/https ports


@dataclass
class WalkResult:
    listener: str = ""
    filter_chain: str = ""
    virtual_host: str = ""
    route: str = ""
    cluster: str = ""
    weighted_clusters: dict[str, int] = field(default_factory=dict)
    direct_response: int = 0
    redirect: dict[str, Any] = field(default_factory=dict)
    route_config: str = ""


class WalkError(LookupError):
    pass


def _addr(lst: listener_pb2.Listener) -> tuple[str, int]:
    sa = lst.address.socket_address
    return sa.address, sa.port_value


def _pick_listener(listeners: list[listener_pb2.Listener], req: Request) -> listener_pb2.Listener:
    exact = [l for l in listeners if _addr(l) == (req.address, req.port)] if req.address else []
    if exact:
        return exact[0]
    by_port = [l for l in listeners if _addr(l)[1] == req.port]
    wildcard = [l for l in by_port if _addr(l)[0] == "0.0.0.0"]
    if wildcard:
        return wildcard[0]
    if not req.address and len(by_port) >= 1:
        return by_port[0]
    virtual = [l for l in listeners if l.name == "virtualOutbound"]
    if virtual:
        return virtual[0]
    raise WalkError(f"no listener for {req.address}:{req.port}")


def _sni_rank(m: listener_components_pb2.FilterChainMatch, name: str) -> tuple[int, int] | None:
    """Envoy's server name order: an exact name, then the longest wildcard, then a chain
    that names none; None when the chain's names do not match."""
    if not m.server_names:
        return (2, 0)
    if name in m.server_names:
        return (0, 0)
    wildcards = [s for s in m.server_names if s.startswith("*") and _domain_match(s, name)]
    return (1, -max(len(s) for s in wildcards)) if wildcards else None


def _pick_chain(lst: listener_pb2.Listener, req: Request) -> listener_components_pb2.FilterChain:
    candidates = []
    for index, fc in enumerate(lst.filter_chains):
        m = fc.filter_chain_match
        if m.HasField("destination_port") and m.destination_port.value != req.port:
            continue
        rank = _sni_rank(m, req.sni or req.host)
        if rank is None:
            continue
        if m.transport_protocol == "tls" and not req.sni:
            continue
        candidates.append((rank, index, fc))
    if candidates:
        return min(candidates, key=lambda c: (c[0], c[1]))[2]
    if lst.HasField("default_filter_chain"):
        return lst.default_filter_chain
    raise WalkError(f"no filter chain on {lst.name} for {req}")


def _domain_match(pattern: str, host: str) -> bool:
    if pattern == "*" or pattern == host:
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    if pattern.endswith("*"):
        return host.startswith(pattern[:-1])
    return False


def pick_virtual_host(
    route_config: route_pb2.RouteConfiguration, host: str
) -> route_components_pb2.VirtualHost:
    """Envoy's order: exact domain, then longest suffix wildcard, then prefix wildcard, then '*'."""
    host = host.lower()
    candidates: list[tuple[int, int, route_components_pb2.VirtualHost]] = []
    for vh in route_config.virtual_hosts:
        for d in vh.domains:
            d = d.lower()
            if d == host:
                candidates.append((0, -len(d), vh))
            elif d == "*":
                candidates.append((3, 0, vh))
            elif d.startswith("*") and _domain_match(d, host):
                candidates.append((1, -len(d), vh))
            elif d.endswith("*") and _domain_match(d, host):
                candidates.append((2, -len(d), vh))
    if not candidates:
        raise WalkError(f"no virtual host in {route_config.name} for {host!r}")
    candidates.sort(key=lambda c: (c[0], c[1]))
    return candidates[0][2]


def _string_match(sm: string_pb2.StringMatcher, value: str) -> bool:
    kind = sm.WhichOneof("match_pattern")
    a = value.lower() if sm.ignore_case else value
    if kind == "exact":
        return a == (sm.exact.lower() if sm.ignore_case else sm.exact)
    if kind == "prefix":
        return a.startswith(sm.prefix.lower() if sm.ignore_case else sm.prefix)
    if kind == "suffix":
        return a.endswith(sm.suffix.lower() if sm.ignore_case else sm.suffix)
    if kind == "contains":
        return (sm.contains.lower() if sm.ignore_case else sm.contains) in a
    if kind == "safe_regex":
        return re.fullmatch(sm.safe_regex.regex, value) is not None
    return False


def _header_ok(hm: route_components_pb2.HeaderMatcher, headers: dict[str, str]) -> bool:
    value = headers.get(hm.name.lower())
    kind = hm.WhichOneof("header_match_specifier")
    if kind == "present_match":
        ok = (value is not None) == hm.present_match
    elif value is None:
        ok = False
    elif kind == "string_match":
        ok = _string_match(hm.string_match, value)
    else:
        ok = True
    return ok != hm.invert_match


def route_matches(match: route_components_pb2.RouteMatch, req: Request, headers: dict[str, str]) -> bool:
    path = req.path.split("?", 1)[0]
    sensitive = not match.HasField("case_sensitive") or match.case_sensitive.value
    p = path if sensitive else path.lower()
    kind = match.WhichOneof("path_specifier")
    if kind == "prefix":
        if not p.startswith(match.prefix if sensitive else match.prefix.lower()):
            return False
    elif kind == "path":
        if p != (match.path if sensitive else match.path.lower()):
            return False
    elif kind == "safe_regex":
        if re.fullmatch(match.safe_regex.regex, path) is None:
            return False
    if not all(_header_ok(h, headers) for h in match.headers):
        return False
    query = dict(parse_qsl(req.path.split("?", 1)[1])) if "?" in req.path else {}
    for qm in match.query_parameters:
        value = query.get(qm.name)
        if qm.WhichOneof("query_parameter_match_specifier") == "present_match":
            if value is None:
                return False
        elif value is None or not _string_match(qm.string_match, value):
            return False
    return True


def walk(config: dict[str, list[Message]], req: Request) -> WalkResult:
    listeners = config[LISTENER_TYPE]
    routes = {r.name: r for r in config.get(ROUTE_TYPE, [])}
    lst = _pick_listener(listeners, req)
    chain = _pick_chain(lst, req)
    result = WalkResult(listener=lst.name, filter_chain=chain.name)
    for f in chain.filters:
        if f.typed_config.Is(tcp_proxy_pb2.TcpProxy.DESCRIPTOR):
            tp = tcp_proxy_pb2.TcpProxy()
            f.typed_config.Unpack(tp)
            if tp.HasField("weighted_clusters"):
                result.weighted_clusters = {c.name: c.weight for c in tp.weighted_clusters.clusters}
            else:
                result.cluster = tp.cluster
            return result
        if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            rc = hcm.route_config if hcm.HasField("route_config") else routes.get(hcm.rds.route_config_name)
            if rc is None:
                raise WalkError(f"route config {hcm.rds.route_config_name!r} not generated")
            return _walk_http(rc, req, result)
    raise WalkError(f"filter chain {chain.name!r} on {lst.name} has no tcp_proxy or HCM")


def _walk_http(rc: route_pb2.RouteConfiguration, req: Request, result: WalkResult) -> WalkResult:
    result.route_config = rc.name
    host = req.host or req.headers.get(":authority", "")
    vh = pick_virtual_host(rc, host)
    result.virtual_host = vh.name
    headers = {k.lower(): v for k, v in req.headers.items()}
    headers.setdefault(":authority", host)
    headers.setdefault(":method", req.method)
    headers.setdefault(":path", req.path)
    headers.setdefault(":scheme", "http")
    for route in vh.routes:
        if not route_matches(route.match, req, headers):
            continue
        result.route = route.name
        action = route.WhichOneof("action")
        if action == "route":
            ra = route.route
            if ra.HasField("weighted_clusters"):
                result.weighted_clusters = {c.name: c.weight.value for c in ra.weighted_clusters.clusters}
            else:
                result.cluster = ra.cluster
        elif action == "direct_response":
            result.direct_response = route.direct_response.status
        elif action == "redirect":
            r = route.redirect
            result.redirect = {
                "path": r.path_redirect, "prefix": r.prefix_rewrite, "host": r.host_redirect, "port": r.port_redirect,
                "scheme": r.scheme_redirect, "code": r.response_code,
            }
        return result
    raise WalkError(f"no route in {vh.name} matches {req}")
