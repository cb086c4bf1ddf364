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
from typing import TYPE_CHECKING

from controlplane.model.security import MutualTLS, PeerAuthentication
from controlplane.translate.index.registry import TLS_MODE_ISTIO, MeshEndpoint
from controlplane.translate.transport import DISABLE, PERMISSIVE, STRICT

if TYPE_CHECKING:
    from controlplane.translate.index.context import PushContext

UNSET = "UNSET"
MODES = (STRICT, PERMISSIVE, DISABLE)


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


def _mode_of(mtls: MutualTLS | None) -> str:
    mode = (mtls.mode if mtls is not None else None) or UNSET
    return mode if mode in MODES else UNSET


def compose(
    mesh_policy: PeerAuthentication | None,
    namespace_policy: PeerAuthentication | None,
    workload_policy: PeerAuthentication | None,
) -> InboundMtls:
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


def inbound_mtls(ctx: PushContext, namespace: str, labels: Mapping[str, str] | None) -> InboundMtls:
    """The effective policy of a workload in ``namespace`` with ``labels`` (memoized per
    snapshot). ``labels`` None: namespace and mesh levels only, as Istio infers a service's
    mode for auto mTLS."""
    key = (namespace, None if labels is None else tuple(sorted(labels.items())))
    cached = ctx.memo.inbound_mtls.get(key)
    if cached is None:
        levels = ctx.policies.peer_authentications.applicable(ctx.mesh.root_namespace, namespace, labels)
        cached = ctx.memo.inbound_mtls[key] = compose(*levels.first_per_level())
    return cached


def has_sidecar(endpoint: MeshEndpoint) -> bool:
    """Its TLS mode is ``istio``: the Pod's label, or a WorkloadEntry's label or serviceAccount
    (see index.services)."""
    return endpoint.tls_mode == TLS_MODE_ISTIO


def endpoint_accepts_mtls(ctx: PushContext, endpoint: MeshEndpoint) -> bool:
    """Does this endpoint run a sidecar (``tlsMode: istio``) whose policy does not DISABLE mTLS
    on its port? Auto mTLS uses it (Istio marks such endpoints ``tlsMode: istio`` in EDS)."""
    if not has_sidecar(endpoint):
        return False
    labels = endpoint.label_map
    if not ctx.policies.peer_authentications:
        return True
    return inbound_mtls(ctx, endpoint.namespace, labels).mode_for(endpoint.port) != DISABLE
