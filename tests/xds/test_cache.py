"""The snapshot cache's interface for the translator."""

from __future__ import annotations

import asyncio
import threading

import pytest

from controlplane.xds import SnapshotCache, XdsCore, types
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, sotw_request
from tests.xds.test_sotw_protocol import base_snapshot


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
