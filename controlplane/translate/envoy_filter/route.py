"""ROUTE_CONFIGURATION, VIRTUAL_HOST and HTTP_ROUTE patches (Istio's rc_patch.go): the route
configuration is merged, then each virtual host (REMOVE, MERGE, REPLACE) and its routes
(REMOVE, MERGE, then ADD and INSERT_*); virtual hosts ADDed last."""

from __future__ import annotations

from functools import partial

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from controlplane.translate.envoy_filter.ops import (
    GATEWAY,
    Applied,
    clone,
    context_matches,
    list_operation,
    merge_value,
)
from controlplane.translate.index.envoy_filters import CompiledPatch, ProxyPatches

_ACTIONS = {"route": "ROUTE", "redirect": "REDIRECT", "direct_response": "DIRECT_RESPONSE"}


def _port_of(name: str) -> int:
    """A sidecar's route config port: ``inbound|9080||``, ``9080`` or ``<bind>_9080``."""
    if name.startswith("inbound|"):
        parts = name.split("|")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _gateway_route_name(name: str) -> tuple[int, str, str]:
    """(port, port name, gateway ``ns/name``) from a gateway's RDS name (Istio's
    ParseGatewayRDSRouteName): ``http.8080`` or ``https.443.<port name>.<gateway>.<ns>``."""
    parts = name.split(".")
    if name.startswith("http.") and len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1]), "", ""
    if name.startswith("https.") and len(parts) >= 5 and parts[1].isdigit():
        return int(parts[1]), parts[2], f"{parts[4]}/{parts[3]}"
    return 0, "", ""


def route_configuration_match(context: str, rc_name: str, patch: CompiledPatch) -> bool:
    m = patch.match.route_configuration
    if m is None:
        return True
    if context != GATEWAY:
        if m.port_number and m.port_number != _port_of(rc_name):
            return False
        return not m.name or m.name == rc_name
    port, port_name, gateway = _gateway_route_name(rc_name)
    if m.port_number and m.port_number != port:
        return False
    if m.port_name and m.port_name != port_name:
        return False
    if m.gateway and m.gateway != gateway:
        return False
    return not m.name or m.name == rc_name


def _vhost_match(vh: rc.VirtualHost, patch: CompiledPatch) -> bool:
    m = patch.match.route_configuration
    if m is None or m.vhost is None:
        return True
    return not m.vhost.name or m.vhost.name == vh.name


def _has_route_match(patch: CompiledPatch) -> bool:
    m = patch.match.route_configuration
    return m is not None and m.vhost is not None and m.vhost.route is not None


def _route_match(route: rc.Route, patch: CompiledPatch) -> bool:
    if not _has_route_match(patch):
        return True
    match = patch.match.route_configuration.vhost.route  # type: ignore[union-attr]
    assert match is not None  # _has_route_match
    if match.name and match.name != route.name:
        return False
    if match.action != "ANY":
        return _ACTIONS.get(route.WhichOneof("action") or "") == match.action
    return True


def patch_route_configuration(
    context: str, config: route_pb2.RouteConfiguration, patches: ProxyPatches, applied: Applied
) -> None:
    """Patch ``config`` in place."""
    for p in patches.of("ROUTE_CONFIGURATION"):
        if p.operation in ("MERGE", "MERGE_AND_REPLACE_LIST") and context_matches(context, p) \
                and route_configuration_match(context, config.name, p):
            merge_value(config, p)
            applied.mark(p)
    relevant_vh = [p for p in patches.of("VIRTUAL_HOST")
                   if context_matches(context, p) and route_configuration_match(context, config.name, p)]
    relevant_routes = [p for p in patches.of("HTTP_ROUTE")
                       if context_matches(context, p) and route_configuration_match(context, config.name, p)]
    if not relevant_vh and not relevant_routes:
        return
    kept: list[rc.VirtualHost] = []
    for vh in config.virtual_hosts:
        patched = _patch_virtual_host(vh, relevant_vh, relevant_routes, applied)
        if patched is not None:
            kept.append(patched)
    for p in relevant_vh:
        if p.operation == "ADD":
            kept.append(clone(p.value))  # type: ignore[arg-type]
            applied.mark(p)
    del config.virtual_hosts[:]
    config.virtual_hosts.extend(kept)


def _patch_virtual_host(
    vh: rc.VirtualHost, vh_patches: list[CompiledPatch], route_patches: list[CompiledPatch], applied: Applied
) -> rc.VirtualHost | None:
    vh = clone(vh)
    for p in vh_patches:
        if not _vhost_match(vh, p):
            continue
        if p.operation == "REMOVE":
            applied.mark(p)
            return None
        if p.operation in ("MERGE", "MERGE_AND_REPLACE_LIST"):
            merge_value(vh, p)
            applied.mark(p)
        elif p.operation == "REPLACE":
            vh = clone(p.value)  # type: ignore[arg-type]
            applied.mark(p)
    mine = [p for p in route_patches if _vhost_match(vh, p)]
    if not mine:
        return vh
    kept: list[rc.Route] = []
    for route in vh.routes:
        removed = False
        for p in mine:
            if not _route_match(route, p):
                continue
            if p.operation == "REMOVE":
                applied.mark(p)
                removed = True
                break
            if p.operation in ("MERGE", "MERGE_AND_REPLACE_LIST"):
                merge_value(route, p)
                applied.mark(p)
        if not removed:
            kept.append(clone(route))
    del vh.routes[:]
    vh.routes.extend(kept)
    for p in mine:
        if p.operation == "INSERT_FIRST":
            # Istio: with a route to match, insert first only when one matches.
            if _has_route_match(p) and not any(_route_match(r, p) for r in vh.routes):
                continue
            list_operation(vh.routes, _as(p, "INSERT_FIRST"), False, lambda r: False)
            applied.mark(p)
        elif p.operation in ("ADD", "INSERT_BEFORE", "INSERT_AFTER") and list_operation(
            vh.routes, p, _has_route_match(p), partial(_route_match, patch=p)
        ):
            applied.mark(p)
    return vh


def _as(patch: CompiledPatch, operation: str) -> CompiledPatch:
    return patch if patch.operation == operation else CompiledPatch(
        patch.id, patch.apply_to, operation, patch.match, patch.value, patch.proxy_version
    )
