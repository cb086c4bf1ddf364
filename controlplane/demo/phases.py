"""The guided tour: each phase changes the YAML folder and says what to look for.

A phase's overlay is a folder of YAML files under ``config/phases/<n>-<key>/``
written into the watched folder (replacing files of the same name), and a
check that tells when a sidecar's config shows the change (see propagation.py).
Phases build on each other: ``--phase canary --only`` first applies the earlier
overlays without traffic, then runs the canary phase.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controlplane.demo import propagation as prop
from controlplane.demo.ingress import GATEWAY_API_PORT, HOST
from controlplane.demo.topology import PHASES_DIR, Workload, copy_config
from controlplane.model.node import ROUTER, SIDECAR

SERVICES = ("productpage", "details", "reviews", "ratings")


def _is_sidecar(workload: Workload) -> bool:
    return workload.kind == SIDECAR


def _is_router(workload: Workload) -> bool:
    return workload.kind == ROUTER


@dataclass(frozen=True)
class Phase:
    key: str
    title: str
    story: str  # one line: what changes and what the table should show
    overlay: Path | None = None
    resource: str = prop.ROUTES
    check: prop.ConfigCheck | None = None
    applies_to: Callable[[Workload], bool] = _is_sidecar  # whose config shows the change
    # Count traffic only once the sidecars concerned drained the connections of their old
    # filter chains (a listener change leaves them open for Envoy's drain time).
    settle: bool = False
    # The users' requests enter at the ingress gateway's Gateway API listener instead of
    # loadgen's sidecar.
    through_gateway: bool = False

    def apply(self, config_dir: Path, block: str) -> list[Path]:
        """Write this phase's YAML into the watched folder; returns the files written."""
        return copy_config(self.overlay, config_dir, block) if self.overlay else []


def _overlay(name: str) -> Path:
    return PHASES_DIR / name


def _with_inbound(workload: Workload) -> bool:
    return workload.inbound_port is not None


# The RBAC policies (Istio's names) each service's sidecar enforces in the authz phase.
AUTHZ_POLICIES: dict[str, tuple[str, ...]] = {
    "reviews": ("ns[default]-policy[reviews-from-productpage]-rule[0]",),
    "productpage": ("ns[default]-policy[productpage-deny-admin]-rule[0]",),
}


_JASON_TO_V2 = prop.header_routes_to("reviews", "end-user", "jason", "v2")

PHASES: tuple[Phase, ...] = (
    Phase(
        key="baseline",
        title="Baseline: no routing rules",
        story="No VirtualService yet: reviews requests spread over v1, v2 and v3.",
    ),
    Phase(
        key="all-v1",
        title="Everything to v1",
        story="VirtualServices send every service to its v1 subset: reviews answers v1 only.",
        overlay=_overlay("1-all-v1"),
        check=prop.all_to_subset(SERVICES, "v1"),
    ),
    Phase(
        key="jason",
        title="end-user: jason to reviews v2",
        story="A header match on reviews: jason sees v2 (with ratings), everyone else v1.",
        overlay=_overlay("2-jason"),
        check=_JASON_TO_V2,
    ),
    Phase(
        key="canary",
        title="A 90/10 canary of reviews v3",
        story="Weighted routes: about 10% of the other users reach v3; jason stays on v2.",
        overlay=_overlay("3-canary"),
        check=prop.both(_JASON_TO_V2, prop.weighted_to("reviews", {"v1": 90, "v3": 10})),
    ),
    Phase(
        key="fault",
        title="A fault injected on ratings",
        story="Callers' sidecars abort half of the ratings calls with HTTP 500: reviews v2/v3 report errors.",
        overlay=_overlay("4-fault"),
        check=prop.has_abort_fault("ratings"),
    ),
    Phase(
        key="strict",
        title="PeerAuthentication STRICT",
        story="Sidecars accept mutual TLS only: mesh traffic goes on, the plaintext caller is refused.",
        overlay=_overlay("5-strict"),
        resource=prop.LISTENERS,
        check=prop.inbound_requires_client_cert,
        applies_to=_with_inbound,
    ),
    Phase(
        key="authz",
        title="AuthorizationPolicy: who may call whom",
        story=(
            "reviews accepts productpage's identity only (ALLOW by principal) and productpage "
            "refuses /admin to everyone (DENY on a path): loadgen's direct calls get 403, "
            "productpage's calls to reviews go on."
        ),
        overlay=_overlay("6-authz"),
        resource=prop.ALL,
        check=prop.enforces_policies(AUTHZ_POLICIES),
        applies_to=lambda w: w.service in AUTHZ_POLICIES,
        settle=True,
    ),
    Phase(
        key="gateway-api",
        title="Users enter through a Gateway API HTTPRoute",
        story=(
            f"A Gateway API Gateway on the ingress gateway (port {GATEWAY_API_PORT}, {HOST}) and "
            "Istio's Bookinfo HTTPRoute: users now reach /productpage through it, and productpage "
            "sees the gateway's identity; the mesh's routing of reviews goes on as before."
        ),
        overlay=_overlay("7-gateway-api"),
        check=prop.path_routes_to(f"http.{GATEWAY_API_PORT}", HOST, "/productpage", "productpage"),
        applies_to=_is_router,
        through_gateway=True,
    ),
)

PHASE_KEYS = tuple(p.key for p in PHASES)


def select(up_to: str | None, only: bool) -> tuple[tuple[Phase, ...], tuple[Phase, ...]]:
    """(phases applied silently first, phases run with traffic)."""
    if up_to is None:
        return (), PHASES
    if up_to not in PHASE_KEYS:
        raise ValueError(f"unknown phase {up_to!r}; phases: {', '.join(PHASE_KEYS)}")
    end = PHASE_KEYS.index(up_to) + 1
    if only:
        return PHASES[: end - 1], PHASES[end - 1 : end]
    return (), PHASES[:end]
