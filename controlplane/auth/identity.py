"""Who a proxy is (proven by its credential) and who it says it is (its node)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.auth.errors import PermissionDenied
from controlplane.ca.spiffe import SpiffeId
from controlplane.model.node import NodeInfo, NodeParseError, parse_node

SERVICE_ACCOUNT_USER_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class ProvenIdentity:
    trust_domain: str
    namespace: str
    service_account: str

    @property
    def spiffe_id(self) -> SpiffeId:
        return SpiffeId.for_workload(self.trust_domain, self.namespace, self.service_account)

    @property
    def kubernetes_username(self) -> str:
        return f"{SERVICE_ACCOUNT_USER_PREFIX}{self.namespace}:{self.service_account}"


@dataclass(frozen=True)
class ClaimedIdentity:
    """What the node says: the namespace it is configured for, and maybe a service account.

    Empty fields claim nothing; a node read by ``model.node.parse_node`` always claims its
    namespace (as Istio's checkConnectionIdentity compares ConfigNamespace and, when set,
    SERVICE_ACCOUNT).
    """

    namespace: str = ""
    service_account: str = ""

    @staticmethod
    def of(node: NodeInfo) -> ClaimedIdentity:
        return ClaimedIdentity(node.namespace, node.service_account)

    def check_against(self, proven: ProvenIdentity) -> None:
        if self.namespace and self.namespace != proven.namespace:
            raise PermissionDenied(
                f"node claims namespace {self.namespace!r}, credential proves {proven.namespace!r}"
            )
        if self.service_account and self.service_account != proven.service_account:
            raise PermissionDenied(
                f"node claims service account {self.service_account!r}, "
                f"credential proves {proven.service_account!r}"
            )


def claim_from_node(node_id: str, metadata: Mapping[str, Any] | None = None) -> ClaimedIdentity:
    """The claim of a node, read exactly as translation reads it (``model.node.parse_node``),
    so the namespace checked here is the namespace the proxy gets config for. A node that
    cannot be read (or names two namespaces) is refused: no credential can vouch for it."""
    try:
        return ClaimedIdentity.of(parse_node(node_id, metadata))
    except NodeParseError as error:
        raise PermissionDenied(str(error)) from None


def identity_from_username(username: str, trust_domain: str) -> ProvenIdentity | None:
    """``system:serviceaccount:<ns>:<sa>`` (a Kubernetes TokenReview user) to an identity."""
    if not username.startswith(SERVICE_ACCOUNT_USER_PREFIX):
        return None
    namespace, _, service_account = username[len(SERVICE_ACCOUNT_USER_PREFIX) :].partition(":")
    if not namespace or not service_account or ":" in service_account:
        return None
    return ProvenIdentity(trust_domain, namespace, service_account)
