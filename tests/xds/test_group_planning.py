"""What a full push asks of each stream is worked out once per group, not once per stream.

A new service gives every stream of a group the whole CDS set, then its client asks for EDS
again with the new cluster's name added. The streams' subscription names, the map of what
they were all sent and the clusters they were all given are shared objects (one per group),
so the set of each type works out what is due against them once (TypeResources.present,
differing, absent) and each stream keeps holding a shared map instead of a copy of its own.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds import XdsCore, types
from controlplane.xds import resources as res
from controlplane.xds.resources import TypeResources, prepare
from controlplane.xds.state import TypeState
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, sotw_request
from tests.xds.support import CLUSTERS, names, snapshot, subscribe_all

GROWN = (*CLUSTERS, "d")


def grown_snapshot():
    return r.snapshot(
        clusters=[r.cluster(n) for n in GROWN],
        endpoints=[r.assignment(n, [("127.0.0.1", 8080)]) for n in GROWN],
        listeners=[r.http_listener("l1", "127.0.0.1", 10000, "routes")],
        routes=[r.route_config("routes", [("/", "d")])],
    )


async def _subscribed(
    stack: AsyncExitStack, core: XdsCore, count: int
) -> list[tuple[StreamDouble, discovery_pb2.DiscoveryResponse]]:
    """``count`` streams of one group holding CDS and EDS (a, b, c), with their last EDS
    response; they end with ``stack``."""
    streams = []
    for _ in range(count):
        ads = await stack.enter_async_context(StreamDouble(core))
        streams.append((ads, await subscribe_all(ads)))
    return streams


async def test_a_new_cluster_leaves_every_stream_holding_the_group_s_maps(cache, core, monkeypatch) -> None:
    cache.set_snapshot("g", snapshot())
    async with AsyncExitStack() as stack:
        streams = await _subscribed(stack, core, 3)
        before = cache.resources("g", types.ENDPOINT)
        # Without comparing maps: a stream must come to hold the view's own map by knowing
        # that what it sent completes the view (TypeResources.completed_by), not by comparing.
        monkeypatch.setattr(TypeState, "share_sent", lambda self, versions: None)
        cache.set_snapshot("g", grown_snapshot())
        view = cache.resources("g", types.ENDPOINT)
        clusters = cache.resources("g", types.CLUSTER)
        for ads, eds in streams:
            cds = await ads.recv()
            assert cds.type_url == types.CLUSTER and names(cds) == sorted(GROWN)
            ads.send(ack(cds))
            # As Envoy: EDS again once the new cluster is there, the new name among the others.
            ads.send(sotw_request(types.ENDPOINT, GROWN, nonce=eds.nonce, version=eds.version_info))
        for ads, _ in streams:
            await ads.settle()
        for ads, _ in streams:
            pushed = [m for m in ads.pending() if m.type_url == types.ENDPOINT]
            assert [names(m) for m in pushed] == [["d"]], "the new cluster's assignment alone"
            state = ads.stream.types[types.ENDPOINT]
            assert state.sent is view.versions, "the view's own map, shared by the group's streams"
            assert ads.stream.types[types.CLUSTER].resources is clusters.by_name
        assert before.versions.keys() < view.versions.keys()


async def test_a_grown_subscription_keeps_the_shared_map_of_what_was_sent(cache, core) -> None:
    """Names only added: what the stream was sent is still all subscribed, so it keeps the
    very map the group's streams share (a copy per stream was 1,400 names each)."""
    cache.set_snapshot("g", snapshot())
    async with AsyncExitStack() as stack:
        (ads, eds), = await _subscribed(stack, core, 1)
        state = ads.stream.types[types.ENDPOINT]
        shared = state.sent
        assert shared is cache.resources("g", types.ENDPOINT).versions
        ads.send(ack(eds, (*CLUSTERS, "missing")))  # a name the view lacks: an empty stand-in
        stand_in = await ads.recv()
        assert names(stand_in) == ["missing"]
        assert state.before is shared and set(state.sent) == {*CLUSTERS, "missing"}
        ads.send(ack(stand_in, ("a",)))  # names dropped: what was sent of them is forgotten
        await ads.settle()
        assert ads.pending() == [] and set(state.sent) == {"a"}


def _set(**versions: int) -> TypeResources:
    return TypeResources.build(types.ENDPOINT, [
        prepare(types.ENDPOINT, r.assignment(name, [("127.0.0.1", port)])) for name, port in versions.items()
    ])


def test_a_set_works_out_what_shared_objects_ask_once(monkeypatch: pytest.MonkeyPatch) -> None:
    view = _set(a=1, b=2, c=3)
    older = _set(a=1, b=9)
    worked: list[str] = []
    memo = res.TypeResources._memo

    def counting(self, kind, of, compute):
        return memo(self, kind, of, lambda: (worked.append(kind), compute())[1])

    monkeypatch.setattr(res.TypeResources, "_memo", counting)
    subscribed = frozenset({"a", "b"})
    assert view.present(subscribed) is subscribed, "all held: the very names"
    assert view.present(frozenset({"a", "z"})) == {"a"}
    assert view.differing(older.versions) == {"b", "c"}
    assert view.differing(view.versions) == frozenset()
    assert view.absent(older.by_name) == [] and older.absent(view.by_name) == ["c"]
    assert view.absent({}) == []
    for _ in range(3):  # the group's other streams: nothing worked out again
        assert view.present(subscribed) is subscribed
        assert view.differing(older.versions) == {"b", "c"}
        assert older.absent(view.by_name) == ["c"]
    assert sorted(worked) == ["absent", "absent", "differing", "differing", "present", "present"]
    # An equal map that is another object is worked out on its own (by identity, never stale).
    assert view.differing(dict(older.versions)) == {"b", "c"} and worked.count("differing") == 3
