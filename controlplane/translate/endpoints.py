"""ClusterLoadAssignments: endpoints grouped by locality, every group with a locality.

gRPC xDS clients reject an assignment whose locality is missing, so even endpoints
with no topology labels sit in an (empty) Locality. With locality-aware balancing on,
priorities follow Istio: 0 same region/zone/subzone as the proxy, 1 same zone,
2 same region, then the failover region, then the rest (see ``load_assignment``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2

from controlplane.model.destination_rule import LocalityFailover, LocalityLoadBalancerSetting
from controlplane.translate.endpoint_workload import add_endpoint_facts
from controlplane.translate.index.registry import MeshEndpoint
from controlplane.translate.pb import socket_address, u32
from controlplane.translate.peer_authentication import has_sidecar
from controlplane.translate.proxy import Locality
from controlplane.translate.transport import mark_istio_endpoint


def _locality_pb(loc: Locality) -> base_pb2.Locality:
    return base_pb2.Locality(region=loc.region, zone=loc.zone, sub_zone=loc.subzone)


def _lb_endpoint(
    ep: MeshEndpoint, accepts_mtls: Callable[[MeshEndpoint], bool], workload_facts: bool
) -> ec.LbEndpoint:
    lb = ec.LbEndpoint()
    lb.endpoint.address.CopyFrom(socket_address(ep.address, ep.port))
    if accepts_mtls(ep):  # auto mTLS picks the cluster's mTLS transport socket for it
        mark_istio_endpoint(lb.metadata)
    if workload_facts and ep.workload:
        add_endpoint_facts(lb.metadata, ep.workload, ep.namespace, ep.labels)
    lb.health_status = health_check_pb2.HEALTHY if ep.healthy else health_check_pb2.UNHEALTHY
    if ep.weight:
        lb.load_balancing_weight.value = ep.weight
    return lb


def _locality_priority(
    proxy: Locality, loc: Locality, failover: tuple[LocalityFailover, ...]
) -> int:
    """Istio's LbPriority and region failover: 0 same subzone, 1 same zone, 2 same region,
    3 another region, except that when a ``failover`` entry is ``from`` the proxy's region
    (the first one counts), regions other than its ``to`` drop to 4."""
    if loc.region == proxy.region:
        if loc.zone == proxy.zone:
            return 0 if loc.subzone == proxy.subzone else 1
        return 2
    for f in failover:
        if f.from_ == proxy.region:
            return 3 if loc.region == f.to else 4
    return 3


# Topology label -> the Locality attribute it compares (read by name below).
_TOPOLOGY_KEYS: Mapping[str, str] = {
    "topology.kubernetes.io/region": "region",
    "topology.kubernetes.io/zone": "zone",
    "topology.istio.io/subzone": "subzone",
}


def _failover_priority(
    keys: tuple[str, ...], ep: MeshEndpoint, proxy: Locality, labels: Mapping[str, str]
) -> int:
    """Istio's failoverPriority: 0 when an endpoint matches the proxy on every listed label,
    else ``len(keys) - i`` for the first label ``i`` it differs on. A missing label is "" on
    either side; ``label=value`` compares with that value instead of the proxy's; topology
    keys compare localities (Istio adds them to both sides' labels)."""
    ep_labels = ep.label_map
    for i, entry in enumerate(keys):
        key, has_value, value = entry.partition("=")
        attr = _TOPOLOGY_KEYS.get(key)
        want = value if has_value else getattr(proxy, attr) if attr else labels.get(key, "")
        have = getattr(ep.locality, attr) if attr else ep_labels.get(key, "")
        if want != have:
            return len(keys) - i
    return 0


def _loc_str(loc: Locality) -> str:
    return "/".join(p for p in (loc.region, loc.zone, loc.subzone))


def _locality_matches(pattern: str, loc: Locality) -> bool:
    want = pattern.split("/")
    have = [loc.region, loc.zone, loc.subzone]
    for i, w in enumerate(want):
        if w == "*":
            return True
        if i >= 3 or have[i] != w:
            return False
    return True


def _group_weights(
    to: Mapping[str, int], groups: Mapping[Locality, list[MeshEndpoint]]
) -> dict[Locality, int]:
    """Istio's applyLocalityWeights: each ``to`` entry's weight is shared by the localities it
    matches (and no earlier entry did), in proportion to their endpoint weights, rounded up.
    Localities no entry matches get none. Entries go in sorted order (Istio's is a Go map's)."""
    left = set(groups)
    out: dict[Locality, int] = {}
    for pattern, weight in sorted(to.items()):
        matched = {
            loc: sum(e.weight or 1 for e in groups[loc])
            for loc in left
            if _locality_matches(pattern, loc)
        }
        total = sum(matched.values())
        for loc, own in matched.items():
            out[loc] = math.ceil(own * weight / total)
        left -= matched.keys()
    return out


def load_assignment(
    cluster_name: str,
    endpoints: Iterable[MeshEndpoint],
    *,
    proxy_locality: Locality | None = None,
    locality_setting: LocalityLoadBalancerSetting | None = None,
    proxy_labels: dict[str, str] | None = None,
    accepts_mtls: Callable[[MeshEndpoint], bool] = has_sidecar,
    workload_facts: bool = False,
) -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints sorted and grouped by locality. ``proxy_locality`` switches on Istio's
    locality load balancing (set only when outlier detection is configured): ``distribute``
    weights if the setting has any, else priorities (failoverPriority, failover, or the
    default by locality), renumbered 0..N without gaps as Envoy and gRPC expect.
    ``accepts_mtls`` says which endpoints get ``tlsMode: istio`` metadata (default: those
    labelled with a sidecar; the translator also honours PeerAuthentication DISABLE).
    ``workload_facts`` puts each endpoint's workload in its metadata, as Istio's (where the
    client's metrics need it: TCP, which carries no headers)."""
    if locality_setting is None:
        locality_setting = LocalityLoadBalancerSetting()
    distribute = locality_setting.distribute
    failover = locality_setting.failover
    keys = locality_setting.failover_priority
    labels = proxy_labels or {}

    def priority(ep: MeshEndpoint) -> int:
        if proxy_locality is None or distribute:
            return 0
        if not keys:
            return _locality_priority(proxy_locality, ep.locality, failover)
        by_labels = _failover_priority(keys, ep, proxy_locality, labels)
        if not failover:
            return by_labels
        # Both set: Istio ranks by labels first, then by locality within each label rank.
        return by_labels * 5 + _locality_priority(proxy_locality, ep.locality, failover)

    groups: dict[tuple[Locality, int], list[MeshEndpoint]] = {}
    for ep in endpoints:
        groups.setdefault((ep.locality, priority(ep)), []).append(ep)
    dense = {p: i for i, p in enumerate(sorted({p for _, p in groups}))}
    weights: dict[Locality, int] | None = None
    if proxy_locality is not None:
        to = next((d.to for d in distribute if _locality_matches(d.from_, proxy_locality)), None)
        if to is not None:  # priorities are all 0 here: one group per locality
            weights = _group_weights(to, {loc: eps for (loc, _), eps in groups.items()})
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    for (loc, prio), eps in sorted(groups.items(), key=lambda kv: (kv[0][1], _loc_str(kv[0][0]))):
        weight = weights.get(loc, 0) if weights is not None else None
        if weight == 0:
            continue
        group = cla.endpoints.add()
        group.locality.CopyFrom(_locality_pb(loc))
        group.priority = dense[prio]
        if weight is not None:
            group.load_balancing_weight.CopyFrom(u32(weight))
        for ep in sorted(eps, key=lambda e: (e.address, e.port)):
            group.lb_endpoints.append(_lb_endpoint(ep, accepts_mtls, workload_facts))
    if not cla.endpoints:
        cla.endpoints.add().locality.SetInParent()
    return cla
