"""The index: its three parts are rebuilt apart, and a partial rebuild equals a full one."""

from __future__ import annotations

from controlplane.model.parse import parse
from controlplane.store import Snapshot
from controlplane.translate import MeshConfig, Proxy, push_context, translate, update_push_context
from tests.translate.support import GOLDEN, load_documents, snapshot_of


def _serialized(out: dict) -> dict:
    return {k: [m.SerializeToString(deterministic=True) for m in v] for k, v in out.items()}


def _base() -> Snapshot:
    return snapshot_of(load_documents((GOLDEN / "bookinfo_all_v1" / "input.yaml").read_text()))


def _changed(snap: Snapshot, document: dict) -> Snapshot:
    resource = parse(document)
    return snap.with_changes({resource.key: resource}, snap.version + 1)


SLICE = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "reviews-extra", "namespace": "default",
                 "labels": {"kubernetes.io/service-name": "reviews"}},
    "addressType": "IPv4", "ports": [{"name": "http", "port": 9080}],
    "endpoints": [{"addresses": ["10.9.9.9"]}],
}
VS = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "ratings-extra", "namespace": "default"},
    "spec": {"hosts": ["ratings"], "http": [{"route": [{"destination": {"host": "ratings", "subset": "v1"}}]}]},
}


def test_kinds_changed_since_names_only_touched_kinds() -> None:
    base = _base()
    assert _changed(base, SLICE).kinds_changed_since(base) == {"EndpointSlice"}
    assert base.kinds_changed_since(base) == frozenset()


def test_an_endpoint_change_rebuilds_services_alone_and_equals_a_full_build() -> None:
    base = _base()
    mesh = MeshConfig()
    before = push_context(base, mesh)
    after_snap = _changed(base, SLICE)
    partial = update_push_context(before, after_snap, after_snap.kinds_changed_since(base))
    assert partial.routing is before.routing and partial.policies is before.policies
    assert partial.service_index is not before.service_index
    assert any(e.address == "10.9.9.9" for e in partial.service_endpoints("reviews.default.svc.cluster.local", 9080))
    proxy = Proxy.make("sidecar", "default", labels={"app": "productpage"})
    assert _serialized(translate(partial, proxy)) == _serialized(translate(push_context(after_snap, mesh), proxy))


def test_a_routing_change_keeps_services_and_policies() -> None:
    base = _base()
    before = push_context(base, MeshConfig())
    after_snap = _changed(base, VS)
    partial = update_push_context(before, after_snap, after_snap.kinds_changed_since(base))
    assert partial.service_index is before.service_index and partial.policies is before.policies
    assert partial.routing is not before.routing
    assert any(e.vs.meta.name == "ratings-extra" for e in partial.virtual_services)


def test_a_kind_no_part_declares_rebuilds_everything() -> None:
    before = push_context(_base(), MeshConfig())
    partial = update_push_context(before, _base(), {"SomethingNew"})
    assert partial.service_index is not before.service_index and partial.routing is not before.routing
