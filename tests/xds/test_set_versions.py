"""A type's version is a content hash of its whole set, whether the set was built whole or
updated by a few resources (SnapshotCache.update_resources derives it from the difference):
replicas and restarts agree, and any changed resource changes it. An updated set (a
persistent map, shared with the set before) reads as the same content built whole."""

from __future__ import annotations

import random

from controlplane.xds import SnapshotCache, types
from controlplane.xds.resources import TypeResources, version_of_set
from tests.harness import xds_resources as r


def assignments(ports: dict[str, int]) -> list:
    return [r.assignment(name, [("127.0.0.1", port)]) for name, port in sorted(ports.items())]


def whole_version(ports: dict[str, int]) -> str:
    """The version a control plane that just started would give this content."""
    return TypeResources.build(types.ENDPOINT, assignments(ports)).version


def test_an_updated_set_has_the_version_of_the_same_content_built_whole(cache: SnapshotCache):
    ports = {f"c{i:02}": 9000 + i for i in range(40)}
    cache.set_snapshot("g", {types.ENDPOINT: assignments(ports)})
    first = cache.resources("g", types.ENDPOINT).version
    assert first == whole_version(ports)
    seen = {first}
    steps: list[dict[str, int]] = [
        {"c07": 7007},  # one replaced
        {"c01": 7001, "c39": 7039},  # two at once
        {"new": 7100},  # a name new to the set
        {"c07": 9007},  # back to what it was
    ]
    for step in steps:
        cache.update_resources("g", types.ENDPOINT, assignments(step))
        ports.update(step)
        view = cache.resources("g", types.ENDPOINT)
        assert view.version == whole_version(ports), step
        assert view.payload_bytes == sum(len(res.payload) for res in view.by_name.values()), step
        assert view.version not in seen, f"{step}: content changed, so must the version"
        seen.add(view.version)
    # Every resource as it first was, the new name aside: the first set's version again
    # (a content hash, not a counter).
    cache.update_resources("g", types.ENDPOINT, assignments({"c01": 9001, "c39": 9039}))
    ports.update({"c01": 9001, "c39": 9039})
    del ports["new"]
    assert whole_version(ports) == first


def test_a_set_version_does_not_depend_on_order_and_changes_with_any_resource():
    ports = {f"c{i}": 9000 + i for i in range(30)}
    prepared = list(TypeResources.build(types.ENDPOINT, assignments(ports)).by_name.values())
    version = version_of_set(prepared)
    shuffled = prepared[:]
    random.Random(7).shuffle(shuffled)
    assert version_of_set(shuffled) == version
    for name in ports:
        changed = TypeResources.build(types.ENDPOINT, assignments({**ports, name: 1})).version
        assert changed != version, name
    assert version_of_set(prepared[:-1]) != version  # one fewer resource


def test_an_updated_set_shares_the_rest_and_reads_as_the_content_built_whole(cache: SnapshotCache):
    ports = {f"c{i:02}": 9000 + i for i in range(30)}
    cache.set_snapshot("g", {types.ENDPOINT: assignments(ports)})
    before = cache.resources("g", types.ENDPOINT)
    before_items = list(before.by_name.items())
    cache.update_resources("g", types.ENDPOINT, assignments({"c05": 7005}))
    cache.update_resources("g", types.ENDPOINT, assignments({"c17": 7017, "a-new": 7100}))
    after = cache.resources("g", types.ENDPOINT)
    ports.update({"c05": 7005, "c17": 7017, "a-new": 7100})
    whole = TypeResources.build(types.ENDPOINT, assignments(ports))

    # Read as a stream does: by name, in name order, keys as a set, the versions map.
    assert list(after.by_name) == list(whole.by_name) == sorted(ports)
    payloads = [res.payload for res in after.by_name.values()]
    assert payloads == [res.payload for res in whole.by_name.values()]
    assert after.by_name.keys() & {"c05", "zzz"} == {"c05"} and "a-new" in after.by_name
    assert after.versions == whole.versions and len(after.by_name) == len(ports)
    assert after.by_name.get("zzz") is None
    # Resources not replaced are the very same objects; the set before is as it was.
    assert after.by_name["c06"] is before.by_name["c06"]
    assert list(before.by_name.items()) == before_items and "a-new" not in before.by_name
