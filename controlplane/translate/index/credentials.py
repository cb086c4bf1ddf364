"""The credentials part of the index: Kubernetes Secrets, and the SDS secrets that
DestinationRule ``credentialName`` makes of them (translate/credentials.py); and ConfigMaps,
whose ``ca.crt`` a Gateway API Gateway may name to verify its clients.

Built from Secrets and ConfigMaps alone, so a change of one rebuilds this part and nothing
else. A Secret is parsed only when some proxy needs it, once per index, whatever the number
of proxies.
Neither the index nor its repr holds key material in a printable form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from controlplane.model.kubernetes import ConfigMap, Secret
from controlplane.translate import credentials
from controlplane.translate.credentials import CredentialProblem
from controlplane.translate.index.service_index import Snapshot

# The kinds this part is built from.
CREDENTIAL_KINDS = frozenset({Secret.KIND, ConfigMap.KIND})


@dataclass(frozen=True, slots=True)
class CredentialIndex:
    secrets: Mapping[tuple[str, str], Secret] = field(default_factory=dict)  # (namespace, name)
    config_maps: Mapping[tuple[str, str], ConfigMap] = field(default_factory=dict)
    # (namespace, SDS name) -> what it resolved to; filled on demand, never compared.
    _resolved: dict[tuple[str, str], secret_pb2.Secret | CredentialProblem] = field(
        default_factory=dict, compare=False
    )

    def resolve(self, namespace: str, resource: str) -> secret_pb2.Secret | CredentialProblem:
        """SDS secret ``resource`` from the Secrets of ``namespace`` (callers only ever pass
        the proxy's own namespace), or why it cannot be served."""
        key = (namespace, resource)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = credentials.resolve(
                lambda ns, name: self.secrets.get((ns, name)), namespace, resource
            )
        return found

    def resolve_config_map(self, namespace: str, name: str, resource: str) -> secret_pb2.Secret | CredentialProblem:
        """SDS secret ``resource``: the CA in ConfigMap ``namespace/name`` (the caller checked
        that the proxy may read it)."""
        key = (namespace, resource)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = credentials.config_map_ca(
                resource, namespace, name, self.config_maps.get((namespace, name))
            )
        return found

    def problems(self) -> tuple[CredentialProblem, ...]:
        """Every problem met so far by resolve(), sorted."""
        found = [r for r in self._resolved.values() if isinstance(r, CredentialProblem)]
        return tuple(sorted(found, key=lambda p: (p.namespace, p.resource)))

    def __repr__(self) -> str:  # never the secrets' content
        return (f"CredentialIndex({len(self.secrets)} Secrets, {len(self.config_maps)} ConfigMaps, "
                f"{len(self._resolved)} resolved)")


def build_credential_index(snapshot: Snapshot) -> CredentialIndex:
    return CredentialIndex(
        {(s.meta.namespace, s.meta.name): s for s in snapshot.of_kind(Secret.KIND)},
        {(c.meta.namespace, c.meta.name): c for c in snapshot.of_kind(ConfigMap.KIND)},
    )
