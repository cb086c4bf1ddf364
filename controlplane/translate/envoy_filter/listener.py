"""LISTENER, LISTENER_FILTER, FILTER_CHAIN, NETWORK_FILTER and HTTP_FILTER patches (Istio's
listener_patch.go), in Istio's order: the listener (REMOVE, MERGE), its listener filters,
then every filter chain (REMOVE, MERGE), its network filters (list operations, then MERGE),
and in an HTTP connection manager its HTTP filters; chains and listeners ADDed last.
An HTTP connection manager's inline route configuration (a sidecar's inbound routes) gets
the route patches too, as Istio patches inbound routes where it builds them."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.translate import names
from controlplane.translate.envoy_filter.merge import merge, merge_any
from controlplane.translate.envoy_filter.ops import (
    Applied,
    clone,
    context_matches,
    list_operation,
    merge_value,
    remove_or_merge,
)
from controlplane.translate.envoy_filter.route import patch_route_configuration
from controlplane.translate.index.envoy_filters import CompiledPatch, ProxyPatches
from controlplane.translate.pb import any_of

HCM_NAMES = ("envoy.filters.network.http_connection_manager", "envoy.http_connection_manager")
_VIRTUAL = (names.VIRTUAL_INBOUND, names.VIRTUAL_OUTBOUND)


def listener_match(lst: listener_pb2.Listener, patch: CompiledPatch) -> bool:
    m = patch.match.listener
    if m is None:
        return True
    if m.name and m.name != lst.name:
        return False
    if patch.apply_to != "LISTENER" and lst.name in _VIRTUAL:
        return True  # the port is matched on the filter chain's destination port instead
    return not m.port_number or lst.address.socket_address.port_value == m.port_number


def _chain_match(lst: listener_pb2.Listener, fc: lc.FilterChain, patch: CompiledPatch) -> bool:
    m = patch.match.listener
    if m is None:
        return True
    fcm = fc.filter_chain_match
    if lst.name in _VIRTUAL and m.port_number and fcm.destination_port.value != m.port_number:
        return False
    match = m.filter_chain
    if match is None:
        return True
    if match.name and match.name != fc.name:
        return False
    if match.sni and match.sni not in fcm.server_names:
        return False
    if match.transport_protocol and fcm.transport_protocol != match.transport_protocol:
        return False
    if match.application_protocols and any(
        p not in fcm.application_protocols for p in match.application_protocols.split(",")
    ):
        return False
    return not match.destination_port or (
        fc.HasField("filter_chain_match") and fcm.HasField("destination_port")
        and fcm.destination_port.value == match.destination_port
    )


def _has_filter_match(patch: CompiledPatch) -> bool:
    m = patch.match.listener
    return m is not None and m.filter_chain is not None and m.filter_chain.filter is not None


def _filter_match(name: str, patch: CompiledPatch) -> bool:
    if not _has_filter_match(patch):
        return True
    return patch.match.listener.filter_chain.filter.name == name  # type: ignore[union-attr]


def _has_sub_filter_match(patch: CompiledPatch) -> bool:
    return _has_filter_match(patch) and patch.match.listener.filter_chain.filter.sub_filter is not None  # type: ignore[union-attr]


def _sub_filter_match(name: str, patch: CompiledPatch) -> bool:
    if not _has_sub_filter_match(patch):
        return True
    return patch.match.listener.filter_chain.filter.sub_filter.name == name  # type: ignore[union-attr]


def _named(test: Callable[[str, CompiledPatch], bool], item: Any, patch: CompiledPatch) -> bool:
    """``test`` on a filter's name (list operations hand over the filter)."""
    return test(item.name, patch)


def _listener_filter_match(name: str, patch: CompiledPatch) -> bool:
    m = patch.match.listener
    return m is None or not m.listener_filter or m.listener_filter == name


def patch_listener(
    context: str, lst: listener_pb2.Listener, patches: ProxyPatches, applied: Applied
) -> bool:
    """Patch ``lst`` in place; False when a REMOVE dropped it."""
    if not remove_or_merge(lst, patches.of("LISTENER"),
                           lambda p: context_matches(context, p) and listener_match(lst, p), applied):
        return False
    for p in patches.of("LISTENER_FILTER"):
        if not context_matches(context, p) or not listener_match(lst, p):
            continue
        has_match = bool(p.match.listener and p.match.listener.listener_filter)
        if p.operation == "MERGE":
            for lf in lst.listener_filters:
                if _listener_filter_match(lf.name, p):
                    merge_value(lf, p)
                    applied.mark(p)
        elif list_operation(lst.listener_filters, p, has_match, partial(_named, _listener_filter_match, patch=p)):
            applied.mark(p)
    _patch_chains(context, lst, patches, applied)
    return True


def _patch_chains(context: str, lst: listener_pb2.Listener, patches: ProxyPatches, applied: Applied) -> None:
    kept: list[lc.FilterChain] = []
    changed = False
    for fc in lst.filter_chains:
        if _patch_chain(context, lst, fc, patches, applied):
            kept.append(clone(fc))
        else:
            changed = True
    if lst.HasField("default_filter_chain") and not _patch_chain(
        context, lst, lst.default_filter_chain, patches, applied
    ):
        lst.ClearField("default_filter_chain")
    for p in patches.of("FILTER_CHAIN"):
        if p.operation == "ADD" and context_matches(context, p) and listener_match(lst, p):
            kept.append(clone(p.value))  # type: ignore[arg-type]
            changed = True
            applied.mark(p)
    if changed:
        del lst.filter_chains[:]
        lst.filter_chains.extend(kept)


def _patch_chain(
    context: str, lst: listener_pb2.Listener, fc: lc.FilterChain, patches: ProxyPatches, applied: Applied
) -> bool:
    """False when a REMOVE dropped the chain."""
    def matches(p: CompiledPatch) -> bool:
        return context_matches(context, p) and listener_match(lst, p) and _chain_match(lst, fc, p)

    if not remove_or_merge(fc, patches.of("FILTER_CHAIN"), matches, applied, _merge_chain):
        return False
    for p in patches.of("NETWORK_FILTER"):
        if not matches(p):
            continue
        if p.operation != "MERGE" and list_operation(
            fc.filters, p, _has_filter_match(p), partial(_named, _filter_match, patch=p)
        ):
            applied.mark(p)
    for flt in fc.filters:
        _patch_network_filter(context, lst, fc, flt, patches, applied)
    return True


def _merge_chain(fc: lc.FilterChain, patch: CompiledPatch) -> None:
    """A transport socket of the same name is merged inside its typed config (Istio's
    mergeTransportSocketListener); anything else is a plain merge."""
    value = patch.value
    assert isinstance(value, lc.FilterChain)
    if value.HasField("transport_socket") and fc.HasField("transport_socket") \
            and value.transport_socket.name == fc.transport_socket.name:
        rest = clone(value)
        rest.ClearField("transport_socket")
        dst, src = fc.transport_socket, value.transport_socket
        if dst.HasField("typed_config") and src.HasField("typed_config"):
            dst.typed_config.CopyFrom(merge_any(dst.typed_config, src.typed_config))
        merge(fc, rest)
        return
    merge_value(fc, patch)


def _merge_typed(target: lc.Filter | hcm_pb2.HttpFilter, patch: CompiledPatch) -> bool:
    """Istio's MERGE of a filter: the name may be overwritten, the typed configs are merged."""
    if not target.HasField("typed_config"):
        return False  # Istio skips filters configured another way (config_discovery)
    value = patch.value
    if value.name:  # type: ignore[union-attr]
        target.name = value.name  # type: ignore[union-attr]
    if value.HasField("typed_config"):  # type: ignore[union-attr]
        target.typed_config.CopyFrom(merge_any(target.typed_config, value.typed_config))  # type: ignore[union-attr]
    return True


def _patch_network_filter(
    context: str, lst: listener_pb2.Listener, fc: lc.FilterChain, flt: lc.Filter,
    patches: ProxyPatches, applied: Applied,
) -> None:
    for p in patches.of("NETWORK_FILTER"):
        if p.operation != "MERGE" or not context_matches(context, p) or not listener_match(lst, p) \
                or not _chain_match(lst, fc, p) or not _filter_match(flt.name, p):
            continue
        if _merge_typed(flt, p):
            applied.mark(p)
    if flt.name in HCM_NAMES:
        _patch_http(context, lst, fc, flt, patches, applied)


def _patch_http(
    context: str, lst: listener_pb2.Listener, fc: lc.FilterChain, flt: lc.Filter,
    patches: ProxyPatches, applied: Applied,
) -> None:
    inline_routes = context == "SIDECAR_INBOUND" and bool(
        patches.of("ROUTE_CONFIGURATION") or patches.of("VIRTUAL_HOST") or patches.of("HTTP_ROUTE")
    )
    relevant = [
        p for p in patches.of("HTTP_FILTER")
        if context_matches(context, p) and listener_match(lst, p) and _chain_match(lst, fc, p)
        and _filter_match(flt.name, p)
    ]
    if not relevant and not inline_routes:
        return
    hcm = hcm_pb2.HttpConnectionManager()
    if not flt.typed_config.Unpack(hcm):
        return
    for p in relevant:
        if p.operation != "MERGE" and list_operation(
            hcm.http_filters, p, _has_sub_filter_match(p), partial(_named, _sub_filter_match, patch=p)
        ):
            applied.mark(p)
    for http_filter in hcm.http_filters:
        for p in relevant:
            if p.operation == "MERGE" and _sub_filter_match(http_filter.name, p) and _merge_typed(http_filter, p):
                applied.mark(p)
    if inline_routes and hcm.HasField("route_config"):
        patch_route_configuration(context, hcm.route_config, patches, applied)
    flt.typed_config.CopyFrom(any_of(hcm))

