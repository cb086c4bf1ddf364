"""What the proxies should receive, computed in-process with the project's translator.

Used to feed the floor server (the same resources, already serialized) and to check that what
every proxy synced is complete (its counts per type equal the translator's for its group).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from benchmarks import mesh, proxies, wire

Resources = dict[str, dict[str, bytes]]  # type URL -> name -> serialized resource


@dataclass(frozen=True)
class Expected:
    by_group: dict[str, Resources]  # node.cluster -> resources
    seconds: float  # translation time (push context + every group)

    def counts(self, group: str) -> dict[str, int]:
        return {wire.SHORT[t]: len(self.by_group[group].get(t, {})) for t in wire.TYPES}


def _proxy(ident: proxies.ProxyIdentity) -> Any:
    """The translator's view of a simulated sidecar as our control plane sees it on the
    plaintext port: no credential, so no workload certificate (no auto mTLS)."""
    import dataclasses

    from controlplane.translate import parse_node

    proxy = parse_node(proxies.node(ident))
    if any(f.name == "has_certificate" for f in dataclasses.fields(proxy)):
        proxy = dataclasses.replace(proxy, has_certificate=False)
    return proxy


def group_identities(groups: int, namespaces: int) -> list[proxies.ProxyIdentity]:
    return [proxies.identity(g, groups, namespaces) for g in range(groups)]


def translate_state(state: mesh.MeshState, groups: int) -> Expected:
    import time

    from controlplane.translate import MeshConfig, push_context, translate

    start = time.perf_counter()
    ctx = push_context(mesh.snapshot(state), MeshConfig())
    by_group: dict[str, Resources] = {}
    for ident in group_identities(groups, state.spec.namespaces):
        out = translate(ctx, _proxy(ident))
        by_group[ident.cluster] = {
            type_url: {_name(m): m.SerializeToString(deterministic=True) for m in messages}
            for type_url, messages in out.items()
        }
    return Expected(by_group, time.perf_counter() - start)


def service_endpoints(state: mesh.MeshState, index: int) -> dict[str, bytes]:
    """The ClusterLoadAssignments of one service (translated from a snapshot holding only it:
    endpoints of a service depend on nothing else)."""
    from controlplane.translate import MeshConfig, endpoints, push_context

    ctx = push_context(mesh.snapshot(state, [index]), MeshConfig())
    ident = proxies.identity(0, 1, state.spec.namespaces)
    return {
        m.cluster_name: m.SerializeToString(deterministic=True)
        for m in endpoints(ctx, _proxy(ident))
    }


def version(value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=8).hexdigest()


def floor_batch(old: Expected | None, new: Expected) -> list[dict[str, Any]]:
    """The updates that take the floor from ``old`` to ``new`` (everything when old is None)."""
    batch = []
    for group, resources in new.by_group.items():
        for type_url in wire.TYPES:
            now = resources.get(type_url, {})
            before = old.by_group.get(group, {}).get(type_url, {}) if old else {}
            changed = {n: (version(v), v) for n, v in now.items() if before.get(n) != v}
            removed = [n for n in before if n not in now]
            if changed or removed or old is None:
                batch.append({"group": group, "type_url": type_url, "set": changed, "remove": removed})
    return batch


def endpoint_batch(groups: list[str], assignments: dict[str, bytes]) -> list[dict[str, Any]]:
    sets = {n: (version(v), v) for n, v in assignments.items()}
    return [{"group": g, "type_url": wire.ENDPOINT, "set": sets, "remove": []} for g in groups]


def with_endpoints(expected: Expected, assignments: dict[str, bytes]) -> Expected:
    by_group = {
        g: {**res, wire.ENDPOINT: {**res.get(wire.ENDPOINT, {}), **assignments}}
        for g, res in expected.by_group.items()
    }
    return Expected(by_group, expected.seconds)


def _name(message: Any) -> str:
    return getattr(message, "name", "") or getattr(message, "cluster_name", "")
