from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import ClassVar

from controlplane.model.base import ObjectMeta, Resource, ResourceKey
from controlplane.store import ChangeSet, Snapshot, Store


@dataclass(frozen=True)
class Thing(Resource):
    """A stand-in model kind, so these tests depend only on model/base.py."""

    KIND: ClassVar[str] = "Thing"
    meta: ObjectMeta
    value: int = 0
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Other(Resource):
    KIND: ClassVar[str] = "Other"
    meta: ObjectMeta


def thing(name: str, value: int = 0, ns: str = "default") -> Thing:
    return Thing(ObjectMeta(name=name, namespace=ns), value)


def test_apply_notifies_added_updated_removed_with_old_and_new() -> None:
    store = Store()
    seen: list[ChangeSet] = []
    store.subscribe(seen.append)

    store.apply("a", [thing("x", 1), thing("y", 1)])
    store.apply("a", [thing("x", 2)], deletes=[ResourceKey("Thing", "default", "y")])

    assert [cs.added for cs in seen] == [
        (ResourceKey("Thing", "default", "x"), ResourceKey("Thing", "default", "y")),
        (),
    ]
    second = seen[1]
    key_x = ResourceKey("Thing", "default", "x")
    assert second.updated == (key_x,)
    assert second.removed == (ResourceKey("Thing", "default", "y"),)
    assert second.changes[key_x].old == thing("x", 1)
    assert second.changes[key_x].new == thing("x", 2)
    assert second.previous is seen[0].snapshot
    assert store.snapshot is second.snapshot
    assert list(store.snapshot) == [key_x]


def test_equal_content_does_not_notify_or_make_a_new_snapshot() -> None:
    store = Store()
    seen: list[ChangeSet] = []
    store.apply("a", [thing("x", 1, ns="n")])
    before = store.snapshot
    store.subscribe(seen.append)

    store.apply("a", [Thing(ObjectMeta(name="x", namespace="n"), 1)])  # equal, other object
    store.replace("a", [thing("x", 1, ns="n")])
    store.apply("a", deletes=[ResourceKey("Thing", "n", "absent")])

    assert seen == []
    assert store.snapshot is before


def test_snapshots_are_immutable_and_old_ones_unchanged() -> None:
    store = Store()
    store.apply("a", [thing(f"t{i}", i) for i in range(100)] + [Other(ObjectMeta("o", "n"))])
    old = store.snapshot
    store.apply("a", [thing("t5", 500)])
    assert old[ResourceKey("Thing", "default", "t5")] == thing("t5", 5)
    assert store.snapshot[ResourceKey("Thing", "default", "t5")] == thing("t5", 500)
    assert len(old) == len(store.snapshot) == 101
    # The untouched kind is shared, not copied.
    assert old._by_kind["Other"] is store.snapshot._by_kind["Other"]


def test_a_change_among_many_rebuilds_its_kind_alone_and_old_snapshots_stay_as_they_were() -> None:
    store = Store()
    store.apply("a", [thing(f"t{i:03}", i) for i in range(300)] + [Other(ObjectMeta("o", "n"))])
    old = store.snapshot
    old_things, old_others = old.of_kind(Thing), old.of_kind(Other)
    gone = ResourceKey("Thing", "default", "t100")
    store.apply("a", [thing("t007", 700), thing("t300", 300)], deletes=[gone])
    new = store.snapshot

    names = [t.meta.name for t in new.of_kind(Thing)]
    assert names == sorted(names) and len(names) == 300
    assert "t100" not in names and "t300" in names and gone not in new and gone in old
    assert new.get_typed(Thing, "default", "t007") == thing("t007", 700)
    # The snapshot before is untouched, its sorted lists too.
    assert old.of_kind(Thing) == old_things and len(old) == 301
    assert old.get_typed(Thing, "default", "t007") == thing("t007", 7)
    # An untouched kind's sorted list is shared with the snapshot before, not sorted again.
    assert new._sorted("Other") is old._sorted("Other") and new.of_kind(Other) == old_others

    # What changed: from the steps in between, and by comparing the maps in full (no history).
    steps = sorted(new.changed_since(old, {"Thing"}), key=repr)
    unrelated = Snapshot({"Thing": {r.key: r for r in new.of_kind(Thing)}}, version=99)
    assert sorted(unrelated.changed_since(old, {"Thing"}), key=repr) == steps
    assert {(o.value if o else -1, n.value if n else -1) for o, n in steps} == {
        (7, 700), (100, -1), (-1, 300)}


def test_typed_accessors_sorted_and_filtered() -> None:
    store = Store()
    store.apply(
        "a",
        [
            thing("b", ns="n2"),
            thing("a", ns="n2"),
            thing("z", ns="n1"),
            Other(ObjectMeta("o", "n1")),
        ],
    )
    snap = store.snapshot
    assert [t.meta.name for t in snap.of_kind(Thing)] == [
        "z",
        "a",
        "b",
    ]  # sorted by key: ns then name
    assert [t.meta.name for t in snap.of_kind("Thing", namespace="n2")] == ["a", "b"]
    assert [r.key.kind for r in snap.in_namespace("n1")] == ["Other", "Thing"]
    assert snap.get_typed(Thing, "n2", "a") == thing("a", ns="n2")
    assert snap.get_typed(Thing, "n2", "missing") is None
    assert snap.kinds() == ("Other", "Thing")
    assert snap.namespaces() == ("n1", "n2")
    assert snap.of_kind("Nothing") == []


def test_replace_for_one_source_does_not_clobber_another() -> None:
    store = Store()
    store.apply("kubernetes", [thing("from-kube")])
    store.replace("folder", [thing("f1"), thing("f2")])
    cs = store.replace("folder", [thing("f2")])
    assert cs.removed == (ResourceKey("Thing", "default", "f1"),)
    assert sorted(k.name for k in store.snapshot) == ["f2", "from-kube"]


def test_same_key_from_two_sources_first_registered_wins_and_other_shows_through() -> None:
    store = Store()
    store.apply("first", [thing("x", 1)])
    cs = store.apply("second", [thing("x", 2)])
    assert not cs
    key = ResourceKey("Thing", "default", "x")
    assert store.snapshot[key].value == 1
    cs = store.apply("first", deletes=[key])
    assert cs.updated == (key,)
    assert store.snapshot[key].value == 2


def test_merge_collapses_add_then_remove_and_change_back() -> None:
    store = Store()
    store.apply("a", [thing("keep", 1)])
    seen: list[ChangeSet] = []
    store.subscribe(seen.append)
    store.apply("a", [thing("tmp")])
    store.apply("a", [thing("keep", 2)])
    store.apply("a", [thing("keep", 1)], deletes=[ResourceKey("Thing", "default", "tmp")])
    store.apply("a", [thing("new")])
    merged = seen[0].merge(seen[1]).merge(seen[2]).merge(seen[3])
    assert merged.added == (ResourceKey("Thing", "default", "new"),)
    assert merged.updated == () and merged.removed == ()
    assert merged.snapshot is store.snapshot


def test_a_failing_subscriber_does_not_stop_others() -> None:
    store = Store()
    seen: list[ChangeSet] = []

    def broken(_: ChangeSet) -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    unsubscribe = store.subscribe(seen.append)
    store.apply("a", [thing("x")])
    unsubscribe()
    store.apply("a", [thing("y")])
    assert len(seen) == 1


async def test_queue_subscriber_receives_changes_from_other_threads() -> None:
    store = Store()
    queue, unsubscribe = store.subscribe_queue()

    def feed() -> None:
        for i in range(50):
            store.apply(f"src{i % 3}", [thing(f"t{i}")])

    threads = [threading.Thread(target=feed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    received = [await asyncio.wait_for(queue.get(), 5) for _ in range(50)]
    unsubscribe()
    assert sorted(k.name for cs in received for k in cs.added) == sorted(f"t{i}" for i in range(50))
    assert [cs.snapshot.version for cs in received] == list(range(1, 51))
