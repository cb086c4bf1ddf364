"""The services part of the index updated after an endpoint change equals one built anew,
and names exactly the hosts whose endpoints changed."""

from __future__ import annotations

from controlplane.model.mesh import MeshConfig
from controlplane.sources.memory import MemorySource
from controlplane.store import Store
from controlplane.translate.index.service_index import (
    ENDPOINT_SOURCE_KINDS,
    build_service_index,
    update_service_index,
)
from tests.translate.support import endpoint_slice, pod, service

MESH = MeshConfig()


def legacy_endpoints(svc: str, *ips: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": svc, "namespace": "default"},
        "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 9080}]}],
    }


def test_each_endpoint_change_updates_only_the_services_it_feeds() -> None:
    store = Store()
    source = MemorySource(store)
    source.apply(
        service("reviews"), service("ratings"), service("details"),
        service("legacy"), service("external", type="ExternalName", externalName="example.com"),
        pod("reviews-1", "reviews", "10.0.0.1"), pod("reviews-2", "reviews", "10.0.0.2", "v2"),
        pod("ratings-1", "ratings", "10.0.1.1"), pod("details-1", "details", "10.0.2.1"),
        endpoint_slice("reviews", ("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2")),
        endpoint_slice("ratings", ("ratings-1", "10.0.1.1")),
        endpoint_slice("details", (None, "10.0.2.1")),  # no targetRef: the Pod is found by address
        legacy_endpoints("legacy", "10.0.3.1"),
    )
    index = build_service_index(store.snapshot, MESH)
    steps: list[tuple[str, object, set[str]]] = [
        ("an address added to a slice",
         lambda: source.apply(endpoint_slice("ratings", ("ratings-1", "10.0.1.1"), (None, "10.0.1.2"))),
         {"ratings.default.svc.cluster.local"}),
        ("a Pod's labels (subset, locality) change, by targetRef",
         lambda: source.apply(pod("reviews-1", "reviews", "10.0.0.1", "v2")),
         {"reviews.default.svc.cluster.local"}),
        ("a Pod's service account changes, found by address",
         lambda: source.apply(pod("details-1", "details", "10.0.2.1", sa="details")),
         {"details.default.svc.cluster.local"}),
        ("legacy Endpoints change", lambda: source.apply(legacy_endpoints("legacy", "10.0.3.1", "10.0.3.2")),
         {"legacy.default.svc.cluster.local"}),
        ("a Pod nobody refers to", lambda: source.apply(pod("spare", "spare", "10.0.9.9")), set()),
        ("a second Pod at an address, first by name: it is the one found",
         lambda: source.apply(pod("aaa-dup", "details", "10.0.2.1", "v2")),
         {"details.default.svc.cluster.local"}),
        ("that Pod gone: the other shows through",
         lambda: source.delete(pod("aaa-dup", "details", "10.0.2.1", "v2")),
         {"details.default.svc.cluster.local"}),
        ("a slice deleted", lambda: source.delete(endpoint_slice("ratings")),
         {"ratings.default.svc.cluster.local"}),
        ("a Pod deleted", lambda: source.delete(pod("reviews-2", "reviews", "10.0.0.2")),
         {"reviews.default.svc.cluster.local"}),
        ("a slice for a Service that does not exist", lambda: source.apply(endpoint_slice("ghost", (None, "10.9.0.1"))),
         set()),
    ]
    for what, change, hosts in steps:
        before = store.snapshot
        change()
        after = store.snapshot
        kinds = after.kinds_changed_since(before)
        assert kinds <= ENDPOINT_SOURCE_KINDS, what
        update = update_service_index(index, after, MESH, after.changed_since(before, kinds))
        rebuilt = build_service_index(after, MESH)
        assert dict(update.index.endpoints) == dict(rebuilt.endpoints), what
        assert update.index.services == rebuilt.services, what
        assert update.index.pods.by_ip == rebuilt.pods.by_ip, what
        assert update.index.pods.by_name == rebuilt.pods.by_name, what
        assert update.hosts == hosts, what
        assert update.index.by_host is index.by_host, f"{what}: services are shared, not rebuilt"
        index = update.index


def test_an_endpoint_whose_pod_has_not_arrived_is_left_out_until_it_does() -> None:
    """Each kind has its own watch, so a slice may name a Pod the store does not hold yet.
    Istio leaves such an endpoint out (getPod / registerEndpointResync): without its Pod it
    would go out with no labels (no subset), no service account and no tlsMode (plaintext to
    a sidecar). It comes once the Pod does, through an update as through a rebuild."""
    store = Store()
    source = MemorySource(store)
    source.apply(service("reviews"), pod("reviews-1", "reviews", "10.0.0.1"),
                 endpoint_slice("reviews", ("reviews-1", "10.0.0.1")))
    index = build_service_index(store.snapshot, MESH)
    reviews = ("reviews.default.svc.cluster.local", 9080)
    steps = [
        ("the slice names a Pod not yet known",
         lambda: source.apply(endpoint_slice("reviews", ("reviews-1", "10.0.0.1"), ("reviews-3", "10.0.0.3"),
                                             (None, "10.0.0.4"))),
         ["10.0.0.1", "10.0.0.4"]),  # an address with no targetRef needs no Pod
        ("its Pod arrives",
         lambda: source.apply(pod("reviews-3", "reviews", "10.0.0.3", "v2", sa="reviewer")),
         ["10.0.0.1", "10.0.0.3", "10.0.0.4"]),
        ("a Pod deleted before the slice stops naming it",
         lambda: source.delete(pod("reviews-1", "reviews", "10.0.0.1")), ["10.0.0.3", "10.0.0.4"]),
    ]
    for what, change, addresses in steps:
        before = store.snapshot
        change()
        after = store.snapshot
        changes = after.changed_since(before, after.kinds_changed_since(before))
        update = update_service_index(index, after, MESH, changes)
        assert dict(update.index.endpoints) == dict(build_service_index(after, MESH).endpoints), what
        assert [e.address for e in update.index.endpoints[reviews]] == addresses, what
        assert update.hosts == {"reviews.default.svc.cluster.local"}, what
        index = update.index
    arrived = next(e for e in index.endpoints[reviews] if e.address == "10.0.0.3")
    assert (arrived.service_account, dict(arrived.labels)["version"]) == ("reviewer", "v2")


def test_a_snapshot_tells_what_changed_since_a_recent_ancestor_as_a_full_comparison_does() -> None:
    store = Store()
    source = MemorySource(store)
    source.apply(service("reviews"), pod("reviews-1", "reviews", "10.0.0.1"))
    start = store.snapshot
    source.apply(pod("reviews-2", "reviews", "10.0.0.2"))
    source.apply(pod("reviews-1", "reviews", "10.0.0.1", "v2"))
    source.delete(pod("reviews-2", "reviews", "10.0.0.2"))
    source.apply(service("ratings"))
    end = store.snapshot
    kinds = end.kinds_changed_since(start)
    from_steps = sorted(end.changed_since(start, kinds), key=repr)
    # The same content without history: compared in full.
    unrelated = type(end)({k: {key: end[key] for key in end if key.kind == k} for k in end.kinds()},
                          version=end.version)
    compared = sorted(unrelated.changed_since(start, kinds), key=repr)
    assert from_steps == compared
    assert sorted((o.meta.name if o else "", n.meta.name if n else "") for o, n in from_steps) == [
        ("", "ratings"), ("reviews-1", "reviews-1")]


def workload_entry(name: str, namespace: str, address: str) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"address": address, "labels": {"app": "reviews"}},
    }


def test_an_update_leaves_the_index_it_came_from_as_it_was() -> None:
    """The maps are persistent (shared, not copied): an update must never show through in
    the index a push in flight (or a stream's group) still reads."""
    store = Store()
    source = MemorySource(store)
    source.apply(
        service("reviews"), service("ratings"),
        pod("reviews-1", "reviews", "10.0.0.1"), pod("reviews-2", "reviews", "10.0.0.2"),
        pod("ratings-1", "ratings", "10.0.1.1"),
        endpoint_slice("reviews", ("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2")),
        endpoint_slice("ratings", ("ratings-1", "10.0.1.1")),
        workload_entry("vm-1", "default", "10.0.5.1"), workload_entry("vm-2", "other", "10.0.5.2"),
    )
    before = store.snapshot
    index = build_service_index(before, MESH)
    kept = dict(index.endpoints)
    source.delete(pod("reviews-2", "reviews", "10.0.0.2"))
    source.apply(endpoint_slice("reviews", ("reviews-1", "10.0.0.1")))
    after = store.snapshot
    changes = after.changed_since(before, after.kinds_changed_since(before))
    update = update_service_index(index, after, MESH, changes)

    reviews = ("reviews.default.svc.cluster.local", 9080)
    # the VM in the Service's namespace stays behind it (the other namespace's never was)
    assert [e.address for e in update.index.endpoints[reviews]] == ["10.0.0.1", "10.0.5.1"]
    assert dict(update.index.endpoints) == dict(build_service_index(after, MESH).endpoints)
    assert update.index.pods.by_ip.get("10.0.0.2") is None
    assert dict(index.endpoints) == kept == dict(build_service_index(before, MESH).endpoints)
    assert [e.address for e in index.endpoints[reviews]] == ["10.0.0.1", "10.0.0.2", "10.0.5.1"]
    assert index.pods.by_ip["10.0.0.2"].meta.name == "reviews-2"
    reviews_2 = ("pod", "default", "reviews-2")
    assert index.sources.users.get(reviews_2) == frozenset({("default", "reviews")})
    assert update.index.sources.users.get(reviews_2) is None


def service_entry(name: str, host: str) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": [host], "ports": [{"name": "http", "number": 9080, "protocol": "HTTP"}],
                 "resolution": "STATIC", "endpoints": [{"address": "10.7.0.1"}]},
    }


def test_service_changes_update_the_index_as_a_rebuild_would() -> None:
    """A new Service (with its Pods and slice, as one file brings them), a port added and one
    gone, a selector that picks WorkloadEntries, a Service deleted: each updated in place
    equals the index built anew, and its lineage names the hosts changed since any earlier
    index of the line. A ServiceEntry sharing a host makes the update a rebuild."""
    store = Store()
    source = MemorySource(store)
    source.apply(
        service("reviews"), service("ratings"), pod("reviews-1", "reviews", "10.0.0.1"),
        endpoint_slice("reviews", ("reviews-1", "10.0.0.1")),
        service_entry("shadowed", "ratings.default.svc.cluster.local"),
        workload_entry("vm-1", "default", "10.0.5.1"),
    )
    index = build_service_index(store.snapshot, MESH)
    first = index.serial
    two_ports = {"ports": [{"name": "http", "port": 9080}, {"name": "grpc", "port": 9090}]}
    steps: list[tuple[str, object, set[str]]] = [
        ("a new Service with its Pod and slice",
         lambda: source.apply(service("details"), pod("details-1", "details", "10.0.2.1"),
                              endpoint_slice("details", ("details-1", "10.0.2.1"))),
         {"details.default.svc.cluster.local"}),
        ("a port added", lambda: source.apply(service("details", **two_ports)), {"details.default.svc.cluster.local"}),
        ("a port gone", lambda: source.apply(service("details")), {"details.default.svc.cluster.local"}),
        ("a selector that picks a WorkloadEntry",
         lambda: source.apply(service("details", selector={"app": "reviews"})),
         {"details.default.svc.cluster.local"}),
        ("a Service deleted with its slice",
         lambda: (source.delete(service("details")), source.delete(endpoint_slice("details"))),
         {"details.default.svc.cluster.local"}),
    ]
    for what, change, hosts in steps:
        before = store.snapshot
        change()
        after = store.snapshot
        update = update_service_index(index, after, MESH, after.changed_since(before, after.kinds_changed_since(before)))
        rebuilt = build_service_index(after, MESH)
        assert dict(update.index.endpoints) == dict(rebuilt.endpoints), what
        assert update.index.services == rebuilt.services, what
        assert dict(update.index.by_host) == dict(rebuilt.by_host), what
        assert update.index.by_selector == rebuilt.by_selector, what
        assert update.hosts == hosts, what
        assert update.index.endpoint_hosts_changed_since(index.serial) == hosts, what
        index = update.index
    assert index.endpoint_hosts_changed_since(first) == {"details.default.svc.cluster.local"}
    assert index.endpoint_hosts_changed_since(index.serial) == frozenset()
    assert index.endpoint_hosts_changed_since(-1) is None  # not of this line: anything may differ

    before = store.snapshot
    source.delete(service("ratings"))  # its host goes to the ServiceEntry it shadowed
    after = store.snapshot
    update = update_service_index(index, after, MESH, after.changed_since(before, after.kinds_changed_since(before)))
    ratings = update.index.by_host["ratings.default.svc.cluster.local"]
    assert ratings.source_kind == "ServiceEntry"
    assert dict(update.index.endpoints) == dict(build_service_index(after, MESH).endpoints)
    assert update.index.endpoint_hosts_changed_since(index.serial) is None  # a rebuild: no lineage
