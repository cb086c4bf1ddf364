"""VirtualService delegation, as Istio's ``mergeVirtualServicesIfNeeded`` does it.

A root VirtualService (it has ``hosts``) may hand an HTTP route to a delegate
VirtualService (it has no ``hosts``) with ``delegate: {name, namespace}``. The index
replaces that route with the delegate's routes merged under it, so everything after
the index (scopes, routes, the request walker) sees plain VirtualServices:

- each delegate match must fall within some root match (``has_conflict``); a delegate
  route whose match fits none is dropped, and the merged matches combine both
  (``merge_match``);
- the root route's rewrite, timeout, retries, fault, mirrors, CORS and headers apply to
  a delegate route that sets none of its own (``merge_route``);
- a delegate is used only when its ``exportTo`` reaches the root's namespace; a missing
  or invisible delegate gives no routes for that root route; a delegate is never used
  on its own.

Short names in a delegate (destination hosts, gateways) mean names in the delegate's
namespace: Istio resolves them before merging, so this module does too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from controlplane.model.common import StringMatch
from controlplane.model.frozen import FrozenDict
from controlplane.model.hosts import resolve_short_name
from controlplane.model.virtual_service import (
    Destination,
    HTTPMatchRequest,
    HTTPRoute,
    VirtualService,
)
from controlplane.translate.index.services import export_set

MESH_GATEWAY = "mesh"

VsKey = tuple[str, str]  # (namespace, name)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DelegateLookup:
    """The delegate a root route names, or why there is none (``problem``)."""

    namespace: str
    name: str
    delegate: VirtualService | None = None
    problem: str = ""


def is_root(vs: VirtualService) -> bool:
    return bool(vs.spec.hosts) and any(r.delegate is not None for r in vs.spec.http)


def by_key(virtual_services: Iterable[VirtualService]) -> dict[VsKey, VirtualService]:
    return {(vs.meta.namespace, vs.meta.name): vs for vs in virtual_services}


def find_delegate(root: VirtualService, route: HTTPRoute, all_vs: Mapping[VsKey, VirtualService]) -> DelegateLookup:
    """The delegate of ``route`` (a root route); ``delegate.namespace`` defaults to the root's."""
    assert route.delegate is not None
    ns = route.delegate.namespace or root.meta.namespace
    name = route.delegate.name
    found = all_vs.get((ns, name))
    if found is None:
        return DelegateLookup(ns, name, problem=f"delegate VirtualService {ns}/{name} not found")
    if found.spec.hosts:  # Istio indexes only VirtualServices without hosts as delegates
        return DelegateLookup(ns, name, problem=f"VirtualService {ns}/{name} has hosts, so it is not a delegate")
    if not delegate_visible(found, root.meta.namespace):
        return DelegateLookup(
            ns, name, problem=f"delegate VirtualService {ns}/{name} is not exported to namespace {root.meta.namespace}"
        )
    return DelegateLookup(ns, name, found)


def delegate_visible(delegate: VirtualService, root_ns: str) -> bool:
    """Istio's delegate rule: exportTo holds ``*`` or the root's namespace (``.`` is the
    delegate's own); no exportTo means the mesh default, ``*``."""
    export = {delegate.meta.namespace if e == "." else e for e in export_set(delegate.spec.export_to)}
    return "*" in export or root_ns in export


# --- merging ---------------------------------------------------------------------------------


def _string_match_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """Istio's stringMatchConflict: is ``leaf`` not provably within ``root``?"""
    if root is None or leaf is None:
        return False
    if root.regex and (leaf.regex or leaf.prefix or leaf.exact):
        return True
    if leaf.regex and (root.regex or root.prefix or root.exact):
        return True
    if root.exact:
        return bool(leaf.prefix) or (leaf.exact or "") != root.exact
    if root.prefix:
        if leaf.prefix:
            return not leaf.prefix.startswith(root.prefix)
        if leaf.exact:
            return not leaf.exact.startswith(root.prefix)
    return True  # e.g. a presence-only root, or a regex root with a presence-only leaf


def has_conflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> bool:
    """Istio's hasConflict: can ``leaf`` (a delegate match) not be nested in ``root``?"""
    pairs = (
        (root.uri, leaf.uri),
        (root.scheme, leaf.scheme),
        (root.method, leaf.method),
        (root.authority, leaf.authority),
    )
    if any(_string_match_conflict(r, l) for r, l in pairs):
        return True
    for root_map, leaf_map in (
        (root.headers, leaf.headers),
        (root.without_headers, leaf.without_headers),
        (root.query_params, leaf.query_params),
    ):
        if any(_string_match_conflict(root_map.get(k), v) for k, v in leaf_map.items()):
            return True
    if root.ignore_uri_case != leaf.ignore_uri_case:
        return True
    if root.port and leaf.port and root.port != leaf.port:
        return True
    # As Istio: a root sourceNamespace requires the delegate match to name the same one.
    if root.source_namespace and leaf.source_namespace != root.source_namespace:
        return True
    if any(k in root.source_labels and root.source_labels[k] != v for k, v in leaf.source_labels.items()):
        return True
    # Gateways: the root's must include all of the delegate's.
    return bool(root.gateways and leaf.gateways) and (
        len(root.gateways) < len(leaf.gateways) or not set(leaf.gateways) <= set(root.gateways)
    )


def _joined(root: str, leaf: str) -> str:
    """Istio names a merged route or match ``<root>-<delegate>``, or whichever is set."""
    if not leaf:
        return root
    return f"{root}-{leaf}" if root else leaf


def _merged_map(root: Mapping[str, T], leaf: Mapping[str, T]) -> Mapping[str, T]:
    if not root:
        return leaf
    if not leaf:
        return root
    return FrozenDict({**root, **leaf})  # the delegate's entry wins a shared key


def merge_match(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> HTTPMatchRequest:
    """Istio's mergeHTTPMatchRequest: the delegate's match, completed by the root's."""
    return replace(
        leaf,
        name=_joined(root.name, leaf.name),
        uri=leaf.uri if leaf.uri is not None else root.uri,
        scheme=leaf.scheme if leaf.scheme is not None else root.scheme,
        method=leaf.method if leaf.method is not None else root.method,
        authority=leaf.authority if leaf.authority is not None else root.authority,
        headers=_merged_map(root.headers, leaf.headers),
        without_headers=_merged_map(root.without_headers, leaf.without_headers),
        query_params=_merged_map(root.query_params, leaf.query_params),
        port=leaf.port or root.port,
        source_labels=_merged_map(root.source_labels, leaf.source_labels),
        source_namespace=leaf.source_namespace or root.source_namespace,
        gateways=leaf.gateways or root.gateways,
        stat_prefix=leaf.stat_prefix or root.stat_prefix,
    )


def merge_matches(
    root: tuple[HTTPMatchRequest, ...], leaf: tuple[HTTPMatchRequest, ...]
) -> tuple[HTTPMatchRequest, ...] | None:
    """Istio's mergeHTTPMatchRequests; None on a conflict (some delegate match fits no root
    match). Each delegate match is merged with every root match it fits."""
    if not root:
        return leaf
    if not leaf:
        return root
    out: list[HTTPMatchRequest] = []
    for sub in leaf:
        fitting = [merge_match(r, sub) for r in root if not has_conflict(r, sub)]
        if not fitting:
            return None
        out += fitting
    return tuple(out)


def _pick(mine: T | None, inherited: T | None) -> T | None:
    """A field the delegate route leaves unset comes from the root route."""
    return inherited if mine is None else mine


def merge_route(root: HTTPRoute, leaf: HTTPRoute) -> HTTPRoute | None:
    """Istio's mergeHTTPRoute: ``leaf`` (a delegate route) under ``root``; None when their
    matches conflict (the delegate route is then dropped)."""
    matches = merge_matches(root.match, leaf.match)
    if matches is None:
        return None
    return replace(
        leaf,
        match=matches,
        name=_joined(root.name, leaf.name),
        rewrite=_pick(leaf.rewrite, root.rewrite),
        direct_response=_pick(leaf.direct_response, root.direct_response),
        timeout=_pick(leaf.timeout, root.timeout),
        retries=_pick(leaf.retries, root.retries),
        fault=_pick(leaf.fault, root.fault),
        mirror=_pick(leaf.mirror, root.mirror),
        mirror_percent=_pick(leaf.mirror_percent, root.mirror_percent),
        mirror_percentage=_pick(leaf.mirror_percentage, root.mirror_percentage),
        cors_policy=_pick(leaf.cors_policy, root.cors_policy),
        mirrors=leaf.mirrors or root.mirrors,
        headers=_pick(leaf.headers, root.headers),
    )


def merge_routes(root: HTTPRoute, delegate_routes: Iterable[HTTPRoute]) -> list[HTTPRoute]:
    """Istio's mergeHTTPRoutes: one merged route per delegate route that does not conflict."""
    return [m for m in (merge_route(root, leaf) for leaf in delegate_routes) if m is not None]


# --- names, resolved as Istio does before merging ----------------------------------------


def gateway_name(name: str, namespace: str) -> str:
    """Istio's resolveGatewayName: ``gw`` / ``./gw`` / ``gw.ns.svc.cluster.local`` -> ``ns/gw``."""
    if name == MESH_GATEWAY:
        return name
    if "/" in name:
        ns, _, gw = name.partition("/")
        return f"{namespace}/{gw}" if ns == "." else name
    if "." not in name:
        return f"{namespace}/{name}"
    gw, _, rest = name.partition(".")
    return f"{rest.split('.', 1)[0]}/{gw}"


def _resolved_match(match: HTTPMatchRequest, namespace: str) -> HTTPMatchRequest:
    if not match.gateways:
        return match
    return replace(match, gateways=tuple(gateway_name(g, namespace) for g in match.gateways))


def _resolved_route(route: HTTPRoute, namespace: str, domain_suffix: str) -> HTTPRoute:
    def dest(d: Destination | None) -> Destination | None:
        if d is None or not d.host:
            return d
        return replace(d, host=resolve_short_name(d.host, namespace, domain_suffix))

    return replace(
        route,
        match=tuple(_resolved_match(m, namespace) for m in route.match),
        route=tuple(replace(rd, destination=dest(rd.destination)) for rd in route.route),
        mirror=dest(route.mirror),
        mirrors=tuple(replace(m, destination=dest(m.destination)) for m in route.mirrors),
    )


# --- the index step --------------------------------------------------------------------------


def merge_root(root: VirtualService, all_vs: Mapping[VsKey, VirtualService], domain_suffix: str) -> VirtualService:
    """``root`` with each delegating route replaced by its merged delegate routes."""
    http: list[HTTPRoute] = []
    for route in root.spec.http:
        if route.delegate is None:
            http.append(route)
            continue
        found = find_delegate(root, route, all_vs)
        if found.delegate is None:
            continue  # as Istio: only this route is lost
        http += [m for m in delegated_routes(root, route, found.delegate, domain_suffix) if m is not None]
    return replace(root, spec=replace(root.spec, http=tuple(http)))


def delegated_routes(
    root: VirtualService, route: HTTPRoute, delegate: VirtualService, domain_suffix: str
) -> list[HTTPRoute | None]:
    """Each of ``delegate``'s routes merged under ``route`` (of ``root``), or None where
    their matches conflict, with names resolved in the namespace that wrote them."""
    parent = replace(route, match=tuple(_resolved_match(m, root.meta.namespace) for m in route.match))
    ns = delegate.meta.namespace
    return [merge_route(parent, _resolved_route(r, ns, domain_suffix)) for r in delegate.spec.http]


def merge_delegates(virtual_services: Iterable[VirtualService], domain_suffix: str) -> list[VirtualService]:
    """Every VirtualService with hosts, in input order, roots merged with their delegates;
    delegates (no hosts) only ever appear inside a root."""
    vses = list(virtual_services)
    all_vs = by_key(vses)
    return [merge_root(vs, all_vs, domain_suffix) if is_root(vs) else vs for vs in vses if vs.spec.hosts]
