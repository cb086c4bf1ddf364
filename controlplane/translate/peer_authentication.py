"""PeerAuthentication: which mTLS mode a workload's inbound ports accept.

Istio's ComposePeerAuthentication: one mesh-level policy (root namespace, no selector),
one namespace-level policy (no selector) and one workload-level policy (a selector that
matches the workload's labels) are picked; when several compete at one level Istio takes
the oldest, and as the input carries no creation time, the first by name wins here.
Modes are applied mesh, then namespace, then workload; UNSET inherits from the level
above, and with nothing set the mode is PERMISSIVE. ``portLevelMtls`` counts only in the
workload-level policy (an UNSET port inherits the workload's mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.translate.index.registry import MeshEndpoint, labels_match
from controlplane.translate.transport import DISABLE, PERMISSIVE, STRICT, TLS_MODE_ISTIO

UNSET = "UNSET"
MODES = (STRICT, PERMISSIVE, DISABLE)

# The label Istio's injector puts on Pods (and that WorkloadEntries carry) whose traffic goes
# through a sidecar able to terminate mTLS.
TLS_MODE_LABEL = "security.istio.io/tlsMode"


@dataclass(frozen=True, slots=True)
class InboundMtls:
    """The effective inbound mode of one workload: for the workload, and per port."""

    mode: str = PERMISSIVE
    ports: tuple[tuple[int, str], ...] = ()

    def mode_for(self, port: int) -> str:
        for number, mode in self.ports:
            if number == port:
                return mode
        return self.mode


def _mode_of(mtls: Any) -> str:
    mode = getattr(mtls, "mode", None) or UNSET
    return mode if mode in MODES else UNSET


def _selector(policy: Any) -> dict[str, str]:
    selector = policy.spec.selector
    return dict(selector.match_labels) if selector is not None and selector.match_labels else {}


def _first(policies: list[Any]) -> Any:
    return min(policies, key=lambda p: p.meta.name) if policies else None


def compose(mesh_policy: Any, namespace_policy: Any, workload_policy: Any) -> InboundMtls:
    """The effective mode from the chosen policy of each level (each may be None)."""
    mode = PERMISSIVE
    for policy in (mesh_policy, namespace_policy, workload_policy):
        if policy is not None and _mode_of(policy.spec.mtls) != UNSET:
            mode = _mode_of(policy.spec.mtls)
    if workload_policy is None:
        return InboundMtls(mode)
    ports = tuple(
        (number, mode if _mode_of(mtls) == UNSET else _mode_of(mtls))
        for number, mtls in workload_policy.spec.port_level_modes
    )
    return InboundMtls(mode, ports)


@dataclass(frozen=True, slots=True)
class _Index:
    by_namespace: Mapping[str, tuple[Any, ...]]


def _index(ctx: Any) -> _Index:
    cached = ctx.scope_cache.get(("peer_authentication", "index"))
    if cached is None:
        by_ns: dict[str, list[Any]] = {}
        for policy in ctx.snapshot.of_kind("PeerAuthentication"):
            by_ns.setdefault(policy.meta.namespace, []).append(policy)
        cached = ctx.scope_cache[("peer_authentication", "index")] = _Index(
            {ns: tuple(items) for ns, items in by_ns.items()}
        )
    return cached


def inbound_mtls(ctx: Any, namespace: str, labels: Mapping[str, str] | None) -> InboundMtls:
    """The effective policy of a workload in ``namespace`` with ``labels`` (memoized per
    snapshot). ``labels`` None: namespace and mesh levels only, as Istio infers a service's
    mode for auto mTLS."""
    key = ("peer_authentication", namespace, None if labels is None else tuple(sorted(labels.items())))
    cached = ctx.scope_cache.get(key)
    if cached is not None:
        return cached
    index = _index(ctx)
    root = ctx.mesh.root_namespace
    mesh_level = [p for p in index.by_namespace.get(root, ()) if not _selector(p)]
    own = index.by_namespace.get(namespace, ())
    namespace_level = [] if namespace == root else [p for p in own if not _selector(p)]
    workload_level = [] if labels is None else [
        p for p in own if _selector(p) and labels_match(_selector(p), dict(labels))
    ]
    result = ctx.scope_cache[key] = compose(_first(mesh_level), _first(namespace_level), _first(workload_level))
    return result


def has_sidecar(endpoint: MeshEndpoint) -> bool:
    return any(k == TLS_MODE_LABEL and v == TLS_MODE_ISTIO for k, v in endpoint.labels)


def endpoint_accepts_mtls(ctx: Any, endpoint: MeshEndpoint) -> bool:
    """Does this endpoint run a sidecar (``tlsMode: istio``) whose policy does not DISABLE mTLS
    on its port? Auto mTLS uses it (Istio marks such endpoints ``tlsMode: istio`` in EDS)."""
    if not has_sidecar(endpoint):
        return False
    labels = endpoint.label_map
    if not _index(ctx).by_namespace:
        return True
    return inbound_mtls(ctx, endpoint.namespace, labels).mode_for(endpoint.port) != DISABLE
