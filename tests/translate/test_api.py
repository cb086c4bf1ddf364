"""Node parsing, group keys, the EDS-only path and the push-context reuse."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from controlplane.model.mesh import MeshConfig
from controlplane.translate import (
    ENDPOINT_TYPE,
    Proxy,
    endpoints,
    group_key,
    parse_node,
    push_context,
    translate,
)
from controlplane.translate.proxy import NodeParseError
from tests.translate.support import GOLDEN, load_documents, snapshot_of


def node(node_id: str, **meta: object) -> base_pb2.Node:
    s = struct_pb2.Struct()
    s.update(meta)
    n = base_pb2.Node(id=node_id)
    n.metadata.CopyFrom(s)
    n.locality.region = "us-east"
    return n


def test_parse_istio_node() -> None:
    p = parse_node(node(
        "sidecar~10.1.0.1~reviews-v1-abc.default~default.svc.cluster.local",
        NAMESPACE="default", SERVICE_ACCOUNT="bookinfo-reviews",
        LABELS={"app": "reviews", "version": "v1"}, INSTANCE_IPS="10.1.0.1,fd00::1", WORKLOAD_NAME="reviews-v1",
    ))
    assert p.kind == "sidecar" and p.namespace == "default" and p.service_account == "bookinfo-reviews"
    assert p.label_map == {"app": "reviews", "version": "v1"}
    assert p.ips == ("10.1.0.1", "fd00::1") and p.workload_name == "reviews-v1"
    assert p.pod_name == "reviews-v1-abc" and p.locality.region == "us-east"


def test_parse_node_defaults_and_errors() -> None:
    p = parse_node(base_pb2.Node(id="router~10.0.0.9~gw.istio-system~istio-system.svc.cluster.local"))
    assert p.kind == "router" and p.namespace == "istio-system" and p.ips == ("10.0.0.9",)
    with pytest.raises(NodeParseError):
        parse_node(base_pb2.Node(id="not-an-istio-node"))
    with pytest.raises(NodeParseError):
        parse_node(base_pb2.Node(id="gateway~1~a.b~b.svc"))


def _ctx(case: str):
    snap = snapshot_of(load_documents((GOLDEN / case / "input.yaml").read_text()))
    return push_context(snap, MeshConfig()), snap


def test_group_key_shares_equal_proxies_and_splits_different_ones() -> None:
    ctx, _ = _ctx("source_labels_and_port_match")
    a = Proxy.make("sidecar", "default", labels={"app": "productpage"}, ips=["10.1.0.1"], pod_name="pp-1")
    b = Proxy.make("sidecar", "default", labels={"app": "productpage"}, ips=["10.1.0.2"], pod_name="pp-2")
    c = Proxy.make("sidecar", "default", labels={"app": "other"}, ips=["10.1.0.3"], pod_name="o-1")
    assert group_key(ctx, a) == group_key(ctx, b)
    assert group_key(ctx, a) != group_key(ctx, c)
    ser = lambda out: {k: [m.SerializeToString(deterministic=True) for m in v] for k, v in out.items()}
    assert ser(translate(ctx, a)) == ser(translate(ctx, b))
    assert ser(translate(ctx, a)) != ser(translate(ctx, c))  # sourceLabels routes differ


def test_explicit_bind_proxies_do_not_share_when_ips_differ() -> None:
    ctx, _ = _ctx("explicit_bind_local_mesh")
    a = Proxy.make("sidecar", "default", labels={"app": "productpage"}, ips=["127.0.10.1"], interception_mode="NONE")
    b = Proxy.make("sidecar", "default", labels={"app": "productpage"}, ips=["127.0.10.2"], interception_mode="NONE")
    assert group_key(ctx, a) != group_key(ctx, b)


def test_endpoints_only_path_matches_full_translation_and_follows_changes() -> None:
    ctx, snap = _ctx("bookinfo_all_v1")
    proxy = Proxy.make("sidecar", "default", labels={"app": "productpage"})
    full = translate(ctx, proxy)[ENDPOINT_TYPE]
    assert [m.SerializeToString() for m in endpoints(ctx, proxy)] == [m.SerializeToString() for m in full]
    # An endpoint change: a new snapshot with one more reviews endpoint.
    slice_key = next(k for k in snap if k.kind == "EndpointSlice" and k.name.startswith("reviews"))
    old = snap[slice_key]
    import dataclasses

    extra = dataclasses.replace(old.endpoints[0], addresses=("10.1.0.99",), target_ref=None)
    changed = snap.with_changes({slice_key: dataclasses.replace(old, endpoints=old.endpoints + (extra,))}, 2)
    after = {m.cluster_name: m for m in endpoints(push_context(changed, MeshConfig()), proxy)}
    addrs = [e.endpoint.address.socket_address.address
             for g in after["outbound|9080||reviews.default.svc.cluster.local"].endpoints for e in g.lb_endpoints]
    assert "10.1.0.99" in addrs
    # Every assignment carries a locality, even with no topology labels (gRPC needs it).
    assert all(g.HasField("locality") for m in after.values() for g in m.endpoints)
