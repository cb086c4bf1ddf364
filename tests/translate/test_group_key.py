"""One group key, read by both the translator and the pusher: proxies share a translation
only where nothing the translation reads differs."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from controlplane.server.push import Pusher
from controlplane.sources.memory import MemorySource
from controlplane.store import Store
from controlplane.translate import (
    LISTENER_TYPE,
    MeshConfig,
    Proxy,
    group_key,
    push_context,
    translate,
)
from controlplane.xds import SnapshotCache
from tests.translate.support import load_documents, snapshot_of

# A Sidecar whose ingress captures nothing: Envoy binds the proxy's own first address.
INPUT = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:8080
"""


def _pod(ip: str, pod: str) -> Proxy:
    return Proxy.make("sidecar", "default", labels={"app": "reviews"}, ips=[ip], pod_name=pod)


def _node(ip: str, pod: str) -> base_pb2.Node:
    meta = struct_pb2.Struct()
    meta.update({"NAMESPACE": "default", "LABELS": {"app": "reviews"}, "INSTANCE_IPS": ip})
    node = base_pb2.Node(id=f"sidecar~{ip}~{pod}.default~default.svc.cluster.local")
    node.metadata.CopyFrom(meta)
    return node


def test_capture_none_ingress_pods_of_one_workload_do_not_share() -> None:
    ctx = push_context(snapshot_of(load_documents(INPUT)), MeshConfig())
    a, b = _pod("10.1.0.1", "reviews-1"), _pod("10.1.0.2", "reviews-2")
    assert group_key(ctx, a) != group_key(ctx, b)
    bound = {p.ips[0]: {lst.name for lst in translate(ctx, p)[LISTENER_TYPE]} for p in (a, b)}
    assert "10.1.0.1_9080" in bound["10.1.0.1"] and "10.1.0.2_9080" in bound["10.1.0.2"]


def test_captured_pods_of_one_workload_share() -> None:
    ctx = push_context(snapshot_of(load_documents(INPUT.split("---")[0])), MeshConfig())
    assert group_key(ctx, _pod("10.1.0.1", "reviews-1")) == group_key(ctx, _pod("10.1.0.2", "reviews-2"))


def test_the_pusher_groups_by_the_translators_key() -> None:
    store = Store()
    MemorySource(store, "test").replace(load_documents(INPUT))
    pusher = Pusher(SnapshotCache(), lambda: store.snapshot, MeshConfig())
    first = pusher.group_of(_node("10.1.0.1", "reviews-1"), None)
    second = pusher.group_of(_node("10.1.0.2", "reviews-2"), None)
    assert first != second
    assert set(pusher.groups()) == {first, second}
