"""ClusterLoadAssignments: endpoints grouped by locality, every group with a locality.

gRPC xDS clients reject an assignment whose locality is missing, so even endpoints
with no topology labels sit in an (empty) Locality. With locality-aware balancing on,
priorities follow Istio: 0 same region/zone/subzone as the proxy, 1 same zone,
2 same region, then failover regions, then the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2

from controlplane.translate.pb import socket_address, u32
from controlplane.translate.peer_authentication import has_sidecar
from controlplane.translate.proxy import Locality
from controlplane.translate.index.registry import MeshEndpoint
from controlplane.translate.transport import mark_istio_endpoint


def _locality_pb(loc: Locality) -> base_pb2.Locality:
    return base_pb2.Locality(region=loc.region, zone=loc.zone, sub_zone=loc.subzone)


def _lb_endpoint(ep: MeshEndpoint, accepts_mtls: Callable[[MeshEndpoint], bool]) -> ec.LbEndpoint:
    lb = ec.LbEndpoint()
    lb.endpoint.address.CopyFrom(socket_address(ep.address, ep.port))
    if accepts_mtls(ep):  # auto mTLS picks the cluster's mTLS transport socket for it
        mark_istio_endpoint(lb.metadata)
    lb.health_status = health_check_pb2.HEALTHY if ep.healthy else health_check_pb2.UNHEALTHY
    if ep.weight:
        lb.load_balancing_weight.value = ep.weight
    return lb


def _priority(proxy: Locality, loc: Locality, failover: dict[str, str]) -> int:
    if loc.region == proxy.region:
        if loc.zone == proxy.zone:
            return 0 if loc.subzone == proxy.subzone else 1
        return 2
    if failover.get(proxy.region) == loc.region:
        return 3
    return 4 if failover else 3


_TOPOLOGY_KEYS = {
    "topology.kubernetes.io/region": "region",
    "topology.kubernetes.io/zone": "zone",
    "topology.istio.io/subzone": "subzone",
}


def _failover_priority(keys: tuple[str, ...], ep: MeshEndpoint, proxy: Locality, labels: dict[str, str]) -> int:
    """Istio's failoverPriority: 0 when an endpoint matches the proxy on every listed label,
    1 when on all but the last, ...; topology keys compare localities."""
    ep_labels = ep.label_map
    matched = 0
    for key in keys:
        attr = _TOPOLOGY_KEYS.get(key)
        if attr is not None:
            same = getattr(ep.locality, attr) == getattr(proxy, attr)
        else:
            same = key in labels and ep_labels.get(key) == labels[key]
        if not same:
            break
        matched += 1
    return len(keys) - matched


def _distribute_weights(setting: Any, proxy: Locality) -> dict[str, int] | None:
    """``distribute`` entry whose ``from`` matches the proxy locality: locality -> weight."""
    for d in getattr(setting, "distribute", ()) or ():
        if _locality_matches(d.from_, proxy):
            return dict(d.to)
    return None


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


def load_assignment(
    cluster_name: str,
    endpoints: Iterable[MeshEndpoint],
    *,
    proxy_locality: Locality | None = None,
    locality_setting: Any = None,
    proxy_labels: dict[str, str] | None = None,
    accepts_mtls: Callable[[MeshEndpoint], bool] = has_sidecar,
) -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints sorted and grouped by locality. ``proxy_locality`` switches on
    Istio's locality priorities (set only when outlier detection is configured).
    ``accepts_mtls`` says which endpoints get ``tlsMode: istio`` metadata (default: those
    labelled with a sidecar; the translator also honours PeerAuthentication DISABLE)."""
    groups: dict[tuple[Locality, int], list[MeshEndpoint]] = {}
    failover = {f.from_: f.to for f in (getattr(locality_setting, "failover", ()) or ())}
    weights = _distribute_weights(locality_setting, proxy_locality) if proxy_locality else None
    priority_keys = tuple(getattr(locality_setting, "failover_priority", ()) or ())
    for ep in endpoints:
        prio = 0
        if proxy_locality is not None and priority_keys:
            prio = _failover_priority(priority_keys, ep, proxy_locality, proxy_labels or {})
        elif proxy_locality is not None and weights is None:
            prio = _priority(proxy_locality, ep.locality, failover)
        groups.setdefault((ep.locality, prio), []).append(ep)
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    for (loc, prio), eps in sorted(groups.items(), key=lambda kv: (kv[0][1], _loc_str(kv[0][0]))):
        group = cla.endpoints.add()
        group.locality.CopyFrom(_locality_pb(loc))
        group.priority = prio
        if weights is not None:
            weight = next((w for pat, w in sorted(weights.items()) if _locality_matches(pat, loc)), 0)
            if weight <= 0:
                cla.endpoints.pop()
                continue
            group.load_balancing_weight.CopyFrom(u32(weight))
        for ep in sorted(eps, key=lambda e: (e.address, e.port)):
            group.lb_endpoints.append(_lb_endpoint(ep, accepts_mtls))
    if not cla.endpoints:
        cla.endpoints.add().locality.SetInParent()
    return cla
