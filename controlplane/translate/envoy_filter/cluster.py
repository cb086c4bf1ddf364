"""CLUSTER patches (Istio's cluster_patch.go): REMOVE and MERGE on the built clusters
(a transport socket of the same name merged inside its typed config), ADD appends."""

from __future__ import annotations

from collections.abc import Collection

from envoy.config.cluster.v3 import cluster_pb2

from controlplane.translate import names
from controlplane.translate.envoy_filter.merge import merge, merge_any
from controlplane.translate.envoy_filter.ops import (
    Applied,
    clone,
    context_matches,
    merge_value,
    remove_or_merge,
)
from controlplane.translate.index.envoy_filters import CompiledPatch, ProxyPatches


def cluster_match(cluster: cluster_pb2.Cluster, patch: CompiledPatch, inbound_hosts: Collection[str]) -> bool:
    m = patch.match.cluster
    if m is None:
        return True
    if m.name:
        return m.name == cluster.name
    parsed = names.parse_cluster_name(cluster.name)
    direction, port, subset, host = parsed if parsed is not None else ("", 0, "", "")
    hosts: Collection[str] = inbound_hosts if direction == "inbound" and inbound_hosts else (host,)
    if m.subset and m.subset != subset:
        return False
    if m.service and m.service not in hosts:
        return False
    return not m.port_number or m.port_number == port


def patch_cluster(
    context: str, cluster: cluster_pb2.Cluster, patches: ProxyPatches, applied: Applied,
    inbound_hosts: Collection[str] = (),
) -> bool:
    """Patch ``cluster`` in place; False when a REMOVE dropped it."""
    return remove_or_merge(
        cluster, patches.of("CLUSTER"),
        lambda p: context_matches(context, p) and cluster_match(cluster, p, inbound_hosts), applied, _merge_cluster,
    )


def _merge_cluster(cluster: cluster_pb2.Cluster, patch: CompiledPatch) -> None:
    value = patch.value
    assert isinstance(value, cluster_pb2.Cluster)
    if not value.HasField("transport_socket"):
        merge_value(cluster, patch)
        return
    rest = clone(value)
    rest.ClearField("transport_socket")
    src = value.transport_socket
    target = None
    if cluster.transport_socket_matches:
        target = next((m.transport_socket for m in cluster.transport_socket_matches
                       if m.transport_socket.name == src.name), None)
        if target is None:
            return  # Istio drops it: a transport_socket beside matches is invalid
    elif cluster.HasField("transport_socket") and cluster.transport_socket.name == src.name:
        target = cluster.transport_socket
    if target is None:
        cluster.transport_socket.CopyFrom(src)
    elif target.HasField("typed_config") and src.HasField("typed_config"):
        target.typed_config.CopyFrom(merge_any(target.typed_config, src.typed_config))
    merge(cluster, rest)

