"""The EnvoyFilter pass: after a builder made a proxy's config, apply the EnvoyFilters that
select the proxy, resource by resource, and keep every result Envoy would accept.

Contexts: a router proxy's resources are GATEWAY; a sidecar's inbound listeners (virtualInbound
and bound inbound ones, ``traffic_direction: INBOUND``), their inline routes and its
``inbound|...`` clusters are SIDECAR_INBOUND; the rest SIDECAR_OUTBOUND.

Builders share their outputs between proxies (memo): a resource a patch may touch is copied
first. A patched resource that fails the checks (``checks.py``) is patched again, patch by
patch, to find the patches at fault; those are left out and reported, the others kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from controlplane.translate.builders.output import ProxyConfig
from controlplane.translate.envoy_filter import checks
from controlplane.translate.envoy_filter.cluster import cluster_match, patch_cluster
from controlplane.translate.envoy_filter.listener import listener_match, patch_listener
from controlplane.translate.envoy_filter.merge import MergeError
from controlplane.translate.envoy_filter.ops import (
    GATEWAY,
    SIDECAR_INBOUND,
    SIDECAR_OUTBOUND,
    Applied,
    adds_in,
    clone,
    context_matches,
)
from controlplane.translate.envoy_filter.route import (
    patch_route_configuration,
    route_configuration_match,
)
from controlplane.translate.index.context import PushContext
from controlplane.translate.index.envoy_filters import (
    CompiledPatch,
    EnvoyFilterProblem,
    PatchId,
    ProxyPatches,
)
from controlplane.translate.proxy import ROUTER, Proxy

M = TypeVar("M", bound=Message)
_INBOUND_DIRECTION = 1  # core.v3.TrafficDirection.INBOUND
_LISTENER_KINDS = ("LISTENER", "LISTENER_FILTER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER",
                   "ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE")
_ROUTE_KINDS = ("ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE")


@dataclass
class PatchResult:
    config: ProxyConfig
    applied: set[PatchId] = field(default_factory=set)
    problems: list[EnvoyFilterProblem] = field(default_factory=list)


def apply_envoy_filters(ctx: PushContext, proxy: Proxy, config: ProxyConfig) -> ProxyConfig:
    """``config`` with the EnvoyFilters that select ``proxy`` applied; problems go to the index."""
    index = ctx.envoy_filters
    if not index:
        return config
    patches = index.patches_for(ctx.mesh.root_namespace, proxy.namespace, proxy.label_map, proxy.istio_version)
    if not patches:
        return config
    result = patch_config(proxy.kind, config, patches, inbound_hosts(ctx, proxy))
    for problem in result.problems:
        index.report(problem)
    return result.config


def inbound_hosts(ctx: PushContext, proxy: Proxy) -> Mapping[int, tuple[str, ...]]:
    """Inbound cluster port -> the services it serves (Istio matches ``cluster.service`` on them)."""
    hosts: dict[int, list[str]] = {}
    for service in ctx.services_selecting(proxy.namespace, proxy.label_map):
        for port in service.ports:
            target = port.target_port if isinstance(port.target_port, int) and port.target_port else port.number
            hosts.setdefault(target, []).append(service.hostname)
    return {k: tuple(v) for k, v in hosts.items()}


def patch_config(
    kind: str, config: ProxyConfig, patches: ProxyPatches,
    hosts_by_port: Mapping[int, tuple[str, ...]] | None = None,
) -> PatchResult:
    """Pure: ``config`` patched for a proxy of ``kind``, which patches applied, which were left out."""
    result = PatchResult(config)
    applied = Applied()
    router = kind == ROUTER
    hosts = hosts_by_port or {}
    listeners = dict(config.listeners)
    if any(patches.of(k) for k in _LISTENER_KINDS):
        listeners = {}
        for name, lst in config.listeners.items():
            context = GATEWAY if router else (
                SIDECAR_INBOUND if lst.traffic_direction == _INBOUND_DIRECTION else SIDECAR_OUTBOUND
            )
            if not any(context_matches(context, p) and listener_match(lst, p)
                       for k in _LISTENER_KINDS for p in patches.of(k)):
                listeners[name] = lst  # no patch can touch it: not even copied
                continue
            patched = _safely(
                lst, patches, _LISTENER_KINDS, applied, result.problems, f"listener {name!r}",
                partial(patch_listener, context), checks.listener_problem,
            )
            if patched is not None:
                listeners[patched.name] = patched
        for context in (GATEWAY,) if router else (SIDECAR_OUTBOUND, SIDECAR_INBOUND):
            for p in patches.of("LISTENER"):
                if p.operation == "ADD" and adds_in(context, p):
                    _add(listeners, p, applied, result.problems, "listener", checks.listener_problem,
                         _address_taken(listeners))
    routes = dict(config.routes)
    if any(patches.of(k) for k in _ROUTE_KINDS):
        context = GATEWAY if router else SIDECAR_OUTBOUND
        routes = {}
        for name, rc in config.routes.items():
            if not any(context_matches(context, p) and route_configuration_match(context, name, p)
                       for k in _ROUTE_KINDS for p in patches.of(k)):
                routes[name] = rc
                continue
            patched = _safely(
                rc, patches, _ROUTE_KINDS, applied, result.problems, f"route configuration {name!r}",
                partial(_patch_routes, context), checks.route_config_problem,
            )
            routes[name] = patched if patched is not None else rc
    clusters = dict(config.clusters)
    if patches.of("CLUSTER"):
        clusters = {}
        for name, c in config.clusters.items():
            inbound = not router and name.startswith("inbound|")
            context = GATEWAY if router else (SIDECAR_INBOUND if inbound else SIDECAR_OUTBOUND)
            port = _cluster_port(name) if inbound else 0
            if not any(context_matches(context, p) and cluster_match(c, p, hosts.get(port, ()))
                       for p in patches.of("CLUSTER") if p.operation != "ADD"):
                clusters[name] = c
                continue
            patched = _safely(
                c, patches, ("CLUSTER",), applied, result.problems, f"cluster {name!r}",
                partial(_patch_cluster, context, hosts.get(port, ())), checks.cluster_problem,
            )
            if patched is not None:
                clusters[patched.name] = patched
        for context in (GATEWAY,) if router else (SIDECAR_OUTBOUND, SIDECAR_INBOUND):
            for p in patches.of("CLUSTER"):
                if p.operation == "ADD" and adds_in(context, p):
                    _add(clusters, p, applied, result.problems, "cluster", checks.cluster_problem)
    extensions = dict(config.extension_configs)
    for p in patches.of("EXTENSION_CONFIG"):
        if p.operation == "ADD":
            _add(extensions, p, applied, result.problems, "extension config", checks.message_problem)
    result.applied = applied.ids
    result.config = dataclasses.replace(
        config, listeners=listeners, routes=routes, clusters=clusters, extension_configs=extensions
    )
    return result


def _patch_routes(context: str, config: route_pb2.RouteConfiguration, patches: ProxyPatches, applied: Applied) -> bool:
    patch_route_configuration(context, config, patches, applied)
    return True  # a route configuration is never removed


def _patch_cluster(
    context: str, hosts: Collection[str], cluster: cluster_pb2.Cluster, patches: ProxyPatches, applied: Applied
) -> bool:
    return patch_cluster(context, cluster, patches, applied, hosts)


def _cluster_port(name: str) -> int:
    parts = name.split("|")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _address_taken(listeners: Mapping[str, listener_pb2.Listener]) -> Callable[[Message], str]:
    def check(new: Message) -> str:
        assert isinstance(new, listener_pb2.Listener)
        address = new.address.SerializeToString(deterministic=True)
        for lst in listeners.values():
            if lst.address.SerializeToString(deterministic=True) == address and lst.name != new.name:
                return f"address: listener {lst.name!r} has the same address"
        return ""
    return check


def _add(
    resources: dict[str, M], patch: CompiledPatch, applied: Applied, problems: list[EnvoyFilterProblem],
    what: str, check: Callable[[M], str], extra: Callable[[Message], str] | None = None,
) -> None:
    value = clone(patch.value)  # type: ignore[arg-type]
    name = getattr(value, "name", "")
    problem = check(value) or (extra(value) if extra else "")  # type: ignore[arg-type]
    if not problem and name in resources:
        problem = f"a {what} named {name!r} exists already"
    if problem:
        problems.append(EnvoyFilterProblem(patch.id, "patch.value", f"the {what} it adds is invalid: {problem}"))
        return
    resources[name] = value  # type: ignore[assignment]
    applied.mark(patch)


Apply = Callable[[Any, ProxyPatches, Applied], bool]


def _run(original: Message, patches: ProxyPatches, apply: Apply, check: Callable[[Any], str]) -> tuple[Any, Applied, str]:
    trial = clone(original)
    applied = Applied()
    try:
        kept = apply(trial, patches, applied)
    except (MergeError, ValueError, TypeError, AttributeError) as exc:
        return None, applied, f"cannot apply: {exc}"
    if not kept:
        return None, applied, ""
    return trial, applied, check(trial)


def _safely(
    original: M, patches: ProxyPatches, kinds: Collection[str], applied: Applied,
    problems: list[EnvoyFilterProblem], what: str, apply: Apply, check: Callable[[Any], str],
) -> M | None:
    """``original`` patched (None: removed by a patch); patches that make it invalid are left out."""
    patched, marks, problem = _run(original, patches, apply, check)
    if patched is not None and not marks.ids:
        return original  # nothing matched: the builder's (possibly shared) resource, unchecked
    if not problem:
        applied.ids |= marks.ids
        return patched
    # Find the patches at fault: add them one at a time, keeping those that leave it valid.
    candidates = [p for k in kinds for p in patches.of(k)]
    candidates.sort(key=lambda p: [q.id for q in patches.all()].index(p.id))
    excluded: set[PatchId] = set()
    for p in candidates:
        later = {q.id for q in candidates[candidates.index(p) + 1:]}
        _, _, problem = _run(original, patches.without(excluded | later), apply, check)
        if problem:
            excluded.add(p.id)
            problems.append(EnvoyFilterProblem(
                p.id, "patch", f"makes {what} invalid, left out: {problem}"
            ))
    patched, marks, _ = _run(original, patches.without(excluded), apply, check)
    applied.ids |= marks.ids
    return patched
