"""Locality-aware load balancing on data: the proxy's locality from its node, endpoints'
localities from Pods and WorkloadEntries, and the EDS priorities and weights that follow."""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from controlplane.model.destination_rule import (
    LocalityDistribute,
    LocalityFailover,
    LocalityLoadBalancerSetting,
)
from controlplane.model.mesh import MeshConfig
from controlplane.translate import Locality, Proxy, endpoints, group_key, parse_node, push_context
from controlplane.translate.endpoints import load_assignment
from controlplane.translate.index.registry import MeshEndpoint
from tests.translate.support import load_documents, snapshot_of

NODE_ID = "sidecar~10.1.0.1~client-0.default~default.svc.cluster.local"
US_A = Locality("us-east", "us-east-1a")
US_B = Locality("us-east", "us-east-1b")
EU_A = Locality("eu-west", "eu-west-1a")
EU_B = Locality("eu-west", "eu-west-1b")
AP_A = Locality("ap-south", "ap-south-1a")


def node(labels: dict[str, str], locality: Locality | None = None) -> base_pb2.Node:
    meta = struct_pb2.Struct()
    meta.update({"NAMESPACE": "default", "LABELS": labels})
    n = base_pb2.Node(id=NODE_ID, metadata=meta)
    if locality is not None:
        n.locality.CopyFrom(base_pb2.Locality(region=locality.region, zone=locality.zone, sub_zone=locality.subzone))
    return n


# --- the proxy's own locality ----------------------------------------------------------------


def test_node_locality_is_the_proxys_when_its_labels_name_none() -> None:
    assert parse_node(node({"app": "client"}, Locality("us-east", "us-east-1a", "rack-1"))).locality == Locality(
        "us-east", "us-east-1a", "rack-1"
    )
    assert parse_node(node({"app": "client"})).locality == Locality()


def test_locality_label_in_node_metadata_wins_over_node_locality() -> None:
    proxy = parse_node(node({"app": "client", "istio-locality": "eu-west.eu-west-1a"}, US_A))
    assert proxy.locality == EU_A
    assert parse_node(node({"istio-locality": "eu-west.eu-west-1a"})).locality == EU_A


def test_topology_labels_in_node_metadata_win_over_everything() -> None:
    labels = {"topology.kubernetes.io/region": "ap-south", "topology.kubernetes.io/zone": "ap-south-1a",
              "istio-locality": "eu-west.eu-west-1a"}
    assert parse_node(node(labels, US_A)).locality == AP_A


# --- endpoints' localities from the inputs ------------------------------------------------------

INPUTS = """
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  clusterIP: 10.96.0.12
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Pod
metadata: {name: by-label, labels: {app: reviews, istio-locality: us-east.us-east-1a.rack-1,
           topology.kubernetes.io/region: ignored}}
status: {podIP: 10.1.1.1}
---
apiVersion: v1
kind: Pod
metadata: {name: by-topology, labels: {app: reviews, topology.kubernetes.io/region: eu-west,
           topology.kubernetes.io/zone: eu-west-1a, topology.istio.io/subzone: rack-2}}
status: {podIP: 10.1.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: bare, labels: {app: reviews}}
status: {podIP: 10.1.1.3}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-x, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints:
- {addresses: [10.1.1.1], targetRef: {kind: Pod, name: by-label}, zone: slice-zone}
- {addresses: [10.1.1.2], targetRef: {kind: Pod, name: by-topology}, zone: slice-zone}
- {addresses: [10.1.1.3], targetRef: {kind: Pod, name: bare}, zone: slice-zone}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: we-field}
spec: {address: 10.2.0.1, labels: {app: reviews, istio-locality: ignored.by-field}, locality: us-east/us-east-1b}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: we-label}
spec: {address: 10.2.0.2, labels: {app: reviews, istio-locality: ap-south.ap-south-1a}}
"""

FAILOVER_RULE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
    loadBalancer:
      localityLbSetting:
        failover: [{from: us-east, to: eu-west}]
"""


def _ctx(*docs: str) -> Any:
    return push_context(snapshot_of(load_documents("\n---\n".join(docs))), MeshConfig())


def _by_address(proxy: Proxy, ctx: Any) -> dict[str, tuple[Locality, int]]:
    (cla,) = [c for c in endpoints(ctx, proxy) if c.cluster_name == "outbound|9080||reviews.default.svc.cluster.local"]
    return {
        lb.endpoint.address.socket_address.address: (Locality(g.locality.region, g.locality.zone, g.locality.sub_zone),
                                                      g.priority)
        for g in cla.endpoints for lb in g.lb_endpoints
    }


def test_endpoint_localities_from_pods_and_workload_entries() -> None:
    got = _by_address(Proxy.make("sidecar", "default", labels={"app": "client"}), _ctx(INPUTS))
    assert got == {
        "10.1.1.1": (Locality("us-east", "us-east-1a", "rack-1"), 0),  # label over topology labels
        "10.1.1.2": (Locality("eu-west", "eu-west-1a", "rack-2"), 0),  # the Pod's topology labels
        "10.1.1.3": (Locality(), 0),  # Istio never reads the slice's zone
        "10.2.0.1": (US_B, 0),  # WorkloadEntry locality field over its label
        "10.2.0.2": (AP_A, 0),  # WorkloadEntry istio-locality label
    }


def test_priorities_follow_the_proxys_own_locality() -> None:
    ctx = _ctx(INPUTS, FAILOVER_RULE)
    in_us = parse_node(node({"app": "client"}, Locality("us-east", "us-east-1a", "rack-1")))
    assert {a: p for a, (_, p) in _by_address(in_us, ctx).items()} == {
        "10.1.1.1": 0,  # same subzone
        "10.2.0.1": 1,  # same region, other zone
        "10.1.1.2": 2,  # the failover region
        "10.1.1.3": 3,  # no region, and ap-south: not the failover target
        "10.2.0.2": 3,
    }
    in_eu = parse_node(node({"app": "client", "istio-locality": "eu-west.eu-west-1a.rack-2"}))
    assert {a: p for a, (_, p) in _by_address(in_eu, ctx).items()} == {
        "10.1.1.2": 0,
        "10.1.1.1": 1,  # no failover rule from eu-west: every other region ranks alike
        "10.1.1.3": 1,
        "10.2.0.1": 1,
        "10.2.0.2": 1,
    }
    assert group_key(ctx, in_us) != group_key(ctx, in_eu)


def test_no_outlier_detection_no_priorities() -> None:
    ctx = _ctx(INPUTS, FAILOVER_RULE.replace("outlierDetection: {consecutive5xxErrors: 1}", "tls: {mode: DISABLE}"))
    in_us = parse_node(node({"app": "client"}, US_A))
    assert {p for _, p in _by_address(in_us, ctx).values()} == {0}


# --- load_assignment: Istio's priorities and weights -------------------------------------------


def _eps(*spec: tuple[str, Locality, dict[str, str]]) -> list[MeshEndpoint]:
    return [MeshEndpoint(address=a, port=80, locality=loc, labels=tuple(sorted(lb.items()))) for a, loc, lb in spec]


def _ranks(cla: Any) -> dict[str, int]:
    return {lb.endpoint.address.socket_address.address: g.priority for g in cla.endpoints for lb in g.lb_endpoints}


def test_priorities_have_no_gaps() -> None:
    eps = _eps(("a", US_A, {}), ("c", AP_A, {}))
    cla = load_assignment("c", eps, proxy_locality=US_A, locality_setting=LocalityLoadBalancerSetting())
    assert _ranks(cla) == {"a": 0, "c": 1}  # Istio's 0 and 3, renumbered as Envoy and gRPC expect


def test_first_failover_entry_from_the_proxys_region_counts() -> None:
    setting = LocalityLoadBalancerSetting(failover=(
        LocalityFailover(from_="ap-south", to="us-east"),
        LocalityFailover(from_="us-east", to="eu-west"),
        LocalityFailover(from_="us-east", to="ap-south"),
    ))
    eps = _eps(("a", US_A, {}), ("b", US_B, {}), ("e", EU_A, {}), ("p", AP_A, {}))
    assert _ranks(load_assignment("c", eps, proxy_locality=US_A, locality_setting=setting)) == {
        "a": 0, "b": 1, "e": 2, "p": 3,
    }


def test_failover_priority_labels_then_locality_failover() -> None:
    net = "topology.istio.io/network"
    setting = LocalityLoadBalancerSetting(
        failover_priority=(net,), failover=(LocalityFailover(from_="us-east", to="eu-west"),)
    )
    eps = _eps(("local", US_A, {net: "a"}), ("eu", EU_A, {net: "a"}), ("ap", AP_A, {net: "a"}),
               ("other-net", US_A, {net: "b"}))
    cla = load_assignment("c", eps, proxy_locality=US_A, locality_setting=setting, proxy_labels={net: "a"})
    assert _ranks(cla) == {"local": 0, "eu": 1, "ap": 2, "other-net": 3}


def test_failover_priority_value_override_and_missing_labels() -> None:
    setting = LocalityLoadBalancerSetting(failover_priority=("topology.istio.io/network=b", "team"))
    eps = _eps(("b-no-team", US_A, {"topology.istio.io/network": "b"}),
               ("b-team", US_A, {"topology.istio.io/network": "b", "team": "x"}),
               ("a", US_A, {"topology.istio.io/network": "a"}))
    # The proxy is on network a and has no team: "=b" prefers b; no team on either side matches.
    cla = load_assignment("c", eps, proxy_locality=US_A, locality_setting=setting,
                          proxy_labels={"topology.istio.io/network": "a"})
    assert _ranks(cla) == {"b-no-team": 0, "b-team": 1, "a": 2}


def test_distribute_shares_a_wildcards_weight_and_drops_unmatched_localities() -> None:
    setting = LocalityLoadBalancerSetting(distribute=(
        LocalityDistribute(from_="us-east/us-east-1a/*", to={"us-east/us-east-1a/*": 80, "eu-west/*": 20}),
    ))
    eps = _eps(("a", US_A, {}), ("b", US_B, {}), ("e1", EU_A, {}), ("e2", EU_B, {}), ("e3", EU_B, {}))
    cla = load_assignment("c", eps, proxy_locality=US_A, locality_setting=setting)
    weights = {g.locality.zone: g.load_balancing_weight.value for g in cla.endpoints}
    assert weights == {"us-east-1a": 80, "eu-west-1a": 7, "eu-west-1b": 14}  # 20 * 1/3, 20 * 2/3, rounded up
    assert {g.priority for g in cla.endpoints} == {0}


def test_distribute_from_another_locality_changes_nothing() -> None:
    setting = LocalityLoadBalancerSetting(distribute=(LocalityDistribute(from_="eu-west/*", to={"eu-west/*": 100}),))
    cla = load_assignment("c", _eps(("a", US_A, {}), ("e", EU_A, {})), proxy_locality=US_A, locality_setting=setting)
    assert _ranks(cla) == {"a": 0, "e": 0}
    assert not any(g.HasField("load_balancing_weight") for g in cla.endpoints)


def test_distribute_weights_apply_without_outlier_detection() -> None:
    """Istio applies ``distribute`` whatever the outlier detection; only failover needs it."""
    from tests.translate.support import GOLDEN

    text = (GOLDEN / "locality_distribute" / "input.yaml").read_text()
    text = text.replace("    outlierDetection:\n      consecutive5xxErrors: 5\n", "")
    assert "outlierDetection" not in text
    ctx = push_context(snapshot_of(load_documents(text)), MeshConfig())
    proxy = Proxy.make("sidecar", "default", labels={"app": "productpage"},
                       locality=Locality("us-east", "us-east-1a"))
    cla = next(c for c in endpoints(ctx, proxy) if c.cluster_name.startswith("outbound|9080||reviews"))
    assert any(g.HasField("load_balancing_weight") for g in cla.endpoints)
