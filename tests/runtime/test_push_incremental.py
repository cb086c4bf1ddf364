"""Endpoint pushes touch only the assignments of the services whose endpoints changed, and
leave every group with exactly what a full translation of the same snapshot gives."""

from __future__ import annotations

from controlplane.server.push import Pusher, PushReport, awaits_pods, merge_changes
from controlplane.sources.memory import MemorySource
from controlplane.store import Store
from controlplane.translate import ENDPOINT_TYPE, MeshConfig
from controlplane.xds import SnapshotCache
from tests.harness.xds_double import node
from tests.translate.support import endpoint_slice, pod, service

RULE = {
    "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
    "metadata": {"name": "reviews", "namespace": "default"},
    "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                            {"name": "v2", "labels": {"version": "v2"}}]},
}
PROXIES = (
    "sidecar~10.0.9.1~app-0.default~default.svc.cluster.local",
    "sidecar~10.0.9.2~other-0.default~default.svc.cluster.local",
)


def reviews_slice(*members: tuple[str, str]) -> dict:
    return endpoint_slice("reviews", *members)


async def test_an_endpoint_push_updates_the_changed_services_assignments_alone() -> None:
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    reports: list[PushReport] = []
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig(), on_push=reports.append)
    source.apply(
        service("reviews"), service("ratings"), RULE,
        pod("reviews-1", "reviews", "10.0.0.1"), pod("reviews-2", "reviews", "10.0.0.2", "v2"),
        pod("ratings-1", "ratings", "10.0.1.1"),
        reviews_slice(("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2")),
        endpoint_slice("ratings", ("ratings-1", "10.0.1.1")),
    )
    groups = [pusher.group_of(node(proxy_id), None) for proxy_id in PROXIES]
    await pusher.push(None)
    before = {g: cache.resources(g, ENDPOINT_TYPE).by_name for g in groups}

    steps = [
        source.apply(pod("reviews-3", "reviews", "10.0.0.3", "v2"),
                     reviews_slice(("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2"),
                                   ("reviews-3", "10.0.0.3"))),
        source.apply(pod("reviews-1", "reviews", "10.0.0.1", "v2")),  # moves to subset v2
        source.delete(pod("reviews-2", "reviews", "10.0.0.2", "v2")),
    ]
    for changes in steps:
        report = await pusher.push(changes)
        assert report is not None and report.endpoints_only

    # Every group holds what a fresh control plane translates from the same snapshot...
    fresh_cache = SnapshotCache()
    fresh = Pusher(fresh_cache, lambda: store.snapshot, MeshConfig())
    for proxy_id, group in zip(PROXIES, groups):
        assert fresh.group_of(node(proxy_id), None) == group
    await fresh.push(None)
    for group in groups:
        got = cache.resources(group, ENDPOINT_TYPE)
        want = fresh_cache.resources(group, ENDPOINT_TYPE)
        assert got.versions == want.versions
        assert list(got.by_name) == sorted(got.by_name)
        # ...and the assignments of the service that did not change are the very same objects.
        ratings = "outbound|9080||ratings.default.svc.cluster.local"
        assert got.by_name[ratings] is before[group][ratings]
        reviews_v2 = "outbound|9080|v2|reviews.default.svc.cluster.local"
        assert got.by_name[reviews_v2] is not before[group][reviews_v2]
        assert b"10.0.0.1" in got.by_name[reviews_v2].payload


async def test_an_endpoint_change_that_changes_nothing_served_notifies_nobody() -> None:
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    source.apply(service("ratings"), pod("ratings-1", "ratings", "10.0.1.1"),
                 endpoint_slice("ratings", ("ratings-1", "10.0.1.1")))
    group = pusher.group_of(node(PROXIES[0]), None)
    await pusher.push(None)
    view = cache.resources(group, ENDPOINT_TYPE)
    report = await pusher.push(source.apply(pod("spare", "spare", "10.0.5.5")))
    assert report is not None and report.endpoints_only
    assert cache.resources(group, ENDPOINT_TYPE) is view, "streams see the same view: nothing to send"


async def test_an_address_gone_disappears_and_the_version_moves_while_views_held_stay() -> None:
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    source.apply(
        service("reviews"), service("ratings"), RULE,
        pod("reviews-1", "reviews", "10.0.0.1"), pod("reviews-2", "reviews", "10.0.0.2"),
        pod("ratings-1", "ratings", "10.0.1.1"),
        reviews_slice(("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2")),
        endpoint_slice("ratings", ("ratings-1", "10.0.1.1")),
    )
    group = pusher.group_of(node(PROXIES[0]), None)
    await pusher.push(None)
    held = cache.resources(group, ENDPOINT_TYPE)  # what a stream in flight holds
    held_version = held.version
    reviews = "outbound|9080||reviews.default.svc.cluster.local"
    held_payload = held.by_name[reviews].payload

    for changes in (
        source.apply(reviews_slice(("reviews-1", "10.0.0.1"))),
        source.delete(pod("reviews-2", "reviews", "10.0.0.2")),
    ):
        report = await pusher.push(changes)
        assert report is not None and report.endpoints_only

    now = cache.resources(group, ENDPOINT_TYPE)
    assert b"10.0.0.2" not in now.by_name[reviews].payload
    assert b"10.0.0.1" in now.by_name[reviews].payload
    assert now.version != held_version
    assert held.version == held_version and held.by_name[reviews].payload == held_payload
    assert b"10.0.0.2" in held_payload
    fresh_cache = SnapshotCache()
    fresh = Pusher(fresh_cache, lambda: store.snapshot, MeshConfig())
    assert fresh.group_of(node(PROXIES[0]), None) == group
    await fresh.push(None)
    assert now.version == fresh_cache.resources(group, ENDPOINT_TYPE).version


async def test_an_endpoint_push_says_whether_it_changed_any_groups_config() -> None:
    """``PushReport.changed`` is False exactly when no group's assignments changed: a Pod no
    slice names, a slice whose new address waits for its Pod (the debouncer then does not
    count the push, and the next event still takes the leading edge)."""
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    source.apply(service("reviews"), pod("reviews-1", "reviews", "10.0.0.1"),
                 reviews_slice(("reviews-1", "10.0.0.1")))
    group = pusher.group_of(node(PROXIES[0]), None)
    await pusher.push(None)
    steps = [
        ("a Pod no slice names", lambda: source.apply(pod("reviews-2", "reviews", "10.0.0.2")), False),
        ("the slice naming it",
         lambda: source.apply(reviews_slice(("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2"))), True),
        ("a slice naming a Pod not yet known",
         lambda: source.apply(reviews_slice(("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2"),
                                            ("reviews-3", "10.0.0.3"))), False),
        ("that Pod", lambda: source.apply(pod("reviews-3", "reviews", "10.0.0.3")), True),
        ("the slice no longer naming the old Pod",
         lambda: source.apply(reviews_slice(("reviews-2", "10.0.0.2"), ("reviews-3", "10.0.0.3"))), True),
        ("then the old Pod deleted", lambda: source.delete(pod("reviews-1", "reviews", "10.0.0.1")), False),
    ]
    for what, change, changed in steps:
        version = cache.resources(group, ENDPOINT_TYPE).version
        report = await pusher.push(change())
        assert report is not None and report.endpoints_only, what
        assert report.changed is changed, what
        assert (cache.resources(group, ENDPOINT_TYPE).version != version) is changed, what


def test_a_change_awaits_pods_while_an_endpoint_waits_for_its_pod() -> None:
    """``awaits_pods`` (the Kubernetes settle: more of the change is on its way) holds for a
    slice naming a Pod not here yet and for a Pod deleted while a slice may still name it."""
    store = Store()
    source = MemorySource(store)
    source.apply(service("reviews"), pod("reviews-1", "reviews", "10.0.0.1"))
    steps = [
        ("a slice naming a Pod that is here",
         lambda: source.apply(reviews_slice(("reviews-1", "10.0.0.1"))), False),
        ("a slice naming one that is not",
         lambda: source.apply(reviews_slice(("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2"))), True),
        ("that Pod", lambda: source.apply(pod("reviews-2", "reviews", "10.0.0.2")), False),
        ("a Pod deleted", lambda: source.delete(pod("reviews-1", "reviews", "10.0.0.1")), True),
        ("a Pod deleted that the slice, changed with it, still names",
         lambda: merge_changes(source.apply(reviews_slice(("reviews-2", "10.0.0.2"))),
                               source.delete(pod("reviews-2", "reviews", "10.0.0.2"))), True),
        ("an address with no targetRef", lambda: source.apply(reviews_slice((None, "10.0.0.3"))), False),
    ]
    for what, change, awaits in steps:
        assert awaits_pods(change()) is awaits, what
    # The rest of a change arriving completes it: the slice dropping the deleted Pod.
    source.apply(pod("reviews-4", "reviews", "10.0.0.4"), reviews_slice(("reviews-4", "10.0.0.4")))
    deleted = source.delete(pod("reviews-4", "reviews", "10.0.0.4"))
    assert awaits_pods(deleted)
    assert not awaits_pods(merge_changes(deleted, source.apply(reviews_slice((None, "10.0.0.5")))))
