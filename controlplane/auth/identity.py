"""Who a proxy is (proven by its credential) and who it says it is (its node)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.auth.errors import PermissionDenied
from controlplane.ca.spiffe import SpiffeId

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
    """What the node says: every namespace it names must agree, as must its service account.

    Empty fields claim nothing (a bare node id such as ``test`` claims no namespace).
    """

    namespaces: frozenset[str] = frozenset()
    service_account: str | None = None

    def check_against(self, proven: ProvenIdentity) -> None:
        for namespace in sorted(self.namespaces):
            if namespace != proven.namespace:
                raise PermissionDenied(
                    f"node claims namespace {namespace!r}, credential proves {proven.namespace!r}"
                )
        if self.service_account and self.service_account != proven.service_account:
            raise PermissionDenied(
                f"node claims service account {self.service_account!r}, "
                f"credential proves {proven.service_account!r}"
            )


def claim_from_node(node_id: str, metadata: Mapping[str, Any] | None = None) -> ClaimedIdentity:
    """Read the claim from Istio node metadata (NAMESPACE, SERVICE_ACCOUNT) and node id.

    A node id ``sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`` names the
    namespace twice; both must match the credential, like the metadata.
    """
    metadata = metadata or {}
    namespaces: set[str] = set()
    if metadata.get("NAMESPACE"):
        namespaces.add(str(metadata["NAMESPACE"]))
    parts = node_id.split("~")
    if len(parts) == 4 and parts[0] in ("sidecar", "router"):
        _, _, pod_dot_namespace, dns_domain = parts
        if "." in pod_dot_namespace:  # pod names may hold dots, namespaces never do
            namespaces.add(pod_dot_namespace.rsplit(".", 1)[1])
        if dns_domain and ".svc." in dns_domain:
            namespaces.add(dns_domain.split(".", 1)[0])
    service_account = metadata.get("SERVICE_ACCOUNT")
    return ClaimedIdentity(frozenset(namespaces), str(service_account) if service_account else None)


def identity_from_username(username: str, trust_domain: str) -> ProvenIdentity | None:
    """``system:serviceaccount:<ns>:<sa>`` (a Kubernetes TokenReview user) to an identity."""
    if not username.startswith(SERVICE_ACCOUNT_USER_PREFIX):
        return None
    namespace, _, service_account = username[len(SERVICE_ACCOUNT_USER_PREFIX) :].partition(":")
    if not namespace or not service_account or ":" in service_account:
        return None
    return ProvenIdentity(trust_domain, namespace, service_account)
