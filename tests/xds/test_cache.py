"""The snapshot cache's interface for the translator."""

from __future__ import annotations

import asyncio
import threading

import pytest

from controlplane.xds import SnapshotCache, XdsCore, types
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, sotw_request
from tests.xds.support import base_snapshot


def test_a_resource_under_the_wrong_type_is_refused(cache: SnapshotCache):
    with pytest.raises(ValueError, match="not a"):
        cache.set_snapshot("g", {types.LISTENER: [r.cluster("a")]})


def test_updating_one_type_needs_a_snapshot_first_and_keeps_the_others(cache: SnapshotCache):
    with pytest.raises(KeyError):
        cache.set_resources("g", types.ENDPOINT, [])
    cache.set_snapshot("g", base_snapshot())
    before = cache.group_versions("g")
    cache.set_resources("g", types.ENDPOINT, [r.assignment("a", [("127.0.0.7", 1)])])
    after = cache.group_versions("g")
    assert after[types.ENDPOINT] != before[types.ENDPOINT]
    assert {t: v for t, v in after.items() if t != types.ENDPOINT} == {
        t: v for t, v in before.items() if t != types.ENDPOINT
    }


def test_unchanged_resources_keep_their_serialized_bytes(cache: SnapshotCache):
    cache.set_snapshot("g", base_snapshot())
    first = cache.resources("g", types.CLUSTER).by_name["a"]
    cache.set_snapshot("g", base_snapshot())
    assert cache.resources("g", types.CLUSTER).by_name["a"] is first  # shared, not re-framed


def test_named_pairs_and_removal(cache: SnapshotCache):
    cache.set_snapshot("g", {types.CLUSTER: [("renamed", r.cluster("a"))]})
    assert list(cache.resources("g", types.CLUSTER).by_name) == ["renamed"]
    cache.remove_group("g")
    assert not cache.has_group("g") and cache.groups() == []


async def test_updates_from_another_thread_reach_streams(cache: SnapshotCache, core: XdsCore):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.CLUSTER, node_id="n"))
        first = await ads.recv()
        ads.send(ack(first))
        thread = threading.Thread(
            target=cache.set_snapshot, args=("g", base_snapshot(timeout_ms=3))
        )
        thread.start()
        await asyncio.to_thread(thread.join)
        second = await ads.recv()
        assert second.version_info != first.version_info


def test_framed_fields_decode_as_the_whole_message(cache: SnapshotCache):
    from envoy.service.discovery.v3 import discovery_pb2
    from google.protobuf import any_pb2

    cache.set_snapshot("g", base_snapshot())
    resource = cache.resources("g", types.CLUSTER).by_name["a"]
    packed = any_pb2.Any(type_url=resource.type_url, value=resource.payload)
    assert (
        resource.sotw_field
        == discovery_pb2.DiscoveryResponse(resources=[packed]).SerializeToString()
    )
    assert discovery_pb2.DeltaDiscoveryResponse.FromString(
        resource.delta_field
    ) == discovery_pb2.DeltaDiscoveryResponse(
        resources=[discovery_pb2.Resource(name="a", version=resource.version, resource=packed)]
    )


class Recorder:
    """A watcher that records on which thread it was told."""

    def __init__(self, group: str | None, identity: str | None = None, loop=None) -> None:
        self.group, self.identity, self.loop = group, identity, loop
        self.threads: list[int] = []

    def notify(self) -> None:
        self.threads.append(threading.get_ident())


def test_only_the_watchers_of_the_group_or_identity_concerned_are_told(cache: SnapshotCache):
    mine, other, certified = Recorder("g"), Recorder("h"), Recorder("h", identity="spiffe://a")
    for watcher in (mine, other, certified):
        cache.watch(watcher)
    cache.set_snapshot("g", base_snapshot())
    cache.set_identity_resources("spiffe://a", types.SECRET, [])
    assert (len(mine.threads), len(other.threads), len(certified.threads)) == (1, 0, 1)
    assert cache.watcher_count("h") == 2
    cache.unwatch(certified)
    cache.set_identity_resources("spiffe://a", types.SECRET, [])
    cache.set_snapshot("h", base_snapshot())
    assert (len(other.threads), len(certified.threads)) == (1, 1)
    assert cache.watcher_count("h") == 1 and cache.watcher_count("nobody") == 0


async def test_from_another_thread_a_loops_watchers_are_told_in_one_callback(
    cache: SnapshotCache, monkeypatch: pytest.MonkeyPatch
):
    loop = asyncio.get_running_loop()
    handed = []
    real = loop.call_soon_threadsafe
    monkeypatch.setattr(loop, "call_soon_threadsafe",
                        lambda *args: handed.append(args) or real(*args))
    watchers = [Recorder("g", loop=loop) for _ in range(50)]
    for watcher in watchers:
        cache.watch(watcher)
    await asyncio.to_thread(cache.set_snapshot, "g", base_snapshot())
    # (to_thread hands its own result over too)
    handed = [args for args in handed if any(isinstance(a, list) for a in args)]
    assert len(handed) == 1 and set(handed[0][1]) == set(watchers)  # one wake-up for the 50
    for _ in range(3):
        await asyncio.sleep(0)
    assert all(w.threads == [threading.get_ident()] for w in watchers)  # on the loop's thread
    cache.set_resources("g", types.ENDPOINT, [])  # on the loop itself: told at once
    assert all(len(w.threads) == 2 for w in watchers)
