"""Per-stream state shared among the streams of a group, and the cheap SotW ACK.

Streams that ask for the same names hold one frozenset of them; a stream that was sent all of
a view holds the view's own name -> version map; an ACK whose subscription bytes equal the
last request's changes nothing, while an ACK that also changes the names is honoured. A
stream tells the core once it settled (every response answered, nothing due).
"""

from __future__ import annotations

from controlplane.xds import XdsCallbacks, XdsCore, types
from controlplane.xds.shared import SubscriptionPool
from tests.harness import xds_resources as r
from tests.harness.xds_double import (
    StreamDouble,
    ack,
    delta_ack,
    delta_request,
    nack,
    sotw_request,
)
from tests.xds.support import CLUSTERS, NODE, names, port_of, snapshot, subscribe_all


def eds_state(ads: StreamDouble):
    return ads.stream.types[types.ENDPOINT]


async def test_streams_of_a_group_share_their_names_and_what_they_were_sent(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as one, StreamDouble(core) as two:
        await subscribe_all(one)
        await subscribe_all(two)
        view = cache.resources("g", types.ENDPOINT)
        assert eds_state(one).names is eds_state(two).names == set(CLUSTERS)
        assert eds_state(one).sent is view.versions and eds_state(two).sent is view.versions
        # An endpoint change: each is sent the one assignment, then holds the new view's map.
        cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", 9001)])])
        for ads in (one, two):
            pushed = await ads.recv()
            assert names(pushed) == ["b"] and port_of(pushed, "b") == 9001
            ads.send(ack(pushed, CLUSTERS))
            await ads.settle()
        view = cache.resources("g", types.ENDPOINT)
        assert eds_state(one).sent is view.versions and eds_state(two).sent is view.versions
        assert eds_state(one).held == view.versions
        # A full snapshot that changes one assignment: the same, by comparison.
        cache.set_snapshot("g", snapshot({"b": 9001, "c": 9002}))
        for ads in (one, two):
            assert names(await ads.recv()) == ["c"]
        view = cache.resources("g", types.ENDPOINT)
        assert eds_state(one).sent is view.versions and eds_state(two).sent is view.versions


async def test_an_ack_that_also_changes_the_names_is_honoured(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.CLUSTER, node_id=NODE))
        ads.send(ack(await ads.recv()))
        ads.send(sotw_request(types.ENDPOINT, ["a"]))
        first = await ads.recv()
        assert names(first) == ["a"]
        ads.send(ack(first, ["a", "c"]))  # ACK of the last nonce, with a name added
        assert names(await ads.recv()) == ["c"]
        ads.send(sotw_request(types.ENDPOINT, ["a", "c"], nonce="stale"))
        await ads.settle()
        assert ads.pending() == []  # a stale nonce is ignored, names and all


async def test_a_repeated_subscription_in_another_order_changes_nothing(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        eds = await subscribe_all(ads)
        state = eds_state(ads)
        shared = state.names
        ads.send(ack(eds, reversed(CLUSTERS)))  # other bytes, the same names
        await ads.settle()
        assert ads.pending() == [] and state.names is shared and state.synced is not None


async def test_dropping_a_name_and_asking_again_sends_it_again(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        eds = await subscribe_all(ads)
        ads.send(ack(eds, ["a", "b"]))
        await ads.settle()
        assert ads.pending() == [] and eds_state(ads).names == {"a", "b"}
        ads.send(ack(eds, CLUSTERS))  # the client forgot c: it must get it again
        assert names(await ads.recv()) == ["c"]


async def test_a_nack_of_a_step_rolls_back_to_the_shared_map(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        good = await subscribe_all(ads)
        held = cache.resources("g", types.ENDPOINT).versions
        cache.update_resources("g", types.ENDPOINT, [r.assignment("a", [("127.0.0.1", 1)])])
        bad = await ads.recv()
        assert eds_state(ads).in_flight == {"a": held["a"]}
        ads.send(nack(bad, "bad endpoint a", CLUSTERS, accepted_version=good.version_info))
        await ads.settle()
        state = eds_state(ads)
        assert state.sent is held and state.in_flight == {}
        assert state.rejected == {"a": cache.resources("g", types.ENDPOINT).versions["a"]}
        cache.update_resources("g", types.ENDPOINT, [r.assignment("a", [("127.0.0.1", 2)])])
        fixed = await ads.recv()
        assert names(fixed) == ["a"] and port_of(fixed, "a") == 2


async def test_delta_streams_share_names_and_what_they_were_sent(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as one, StreamDouble(core, delta=True) as two:
        for ads in (one, two):
            ads.send(delta_request(types.CLUSTER, node_id=NODE))
            ads.send(delta_ack(await ads.recv()))
            ads.send(delta_request(types.ENDPOINT, CLUSTERS))
            eds = await ads.recv()
            assert sorted(res.name for res in eds.resources) == list(CLUSTERS)
            ads.send(delta_ack(eds))
            await ads.settle()
        view = cache.resources("g", types.ENDPOINT)
        assert eds_state(one).names is eds_state(two).names
        assert eds_state(one).sent is view.versions and eds_state(two).sent is view.versions
        one.send(delta_request(types.ENDPOINT, unsubscribe=["c"]))
        await one.settle()
        assert eds_state(one).names == {"a", "b"} and eds_state(two).names == set(CLUSTERS)
        assert "c" not in eds_state(one).sent and "c" in eds_state(two).sent


class Settled(XdsCallbacks):
    def __init__(self) -> None:
        self.settled: list[int] = []

    def on_stream_settled(self, stream_id: int) -> None:
        self.settled.append(stream_id)


async def test_a_stream_says_once_it_settled_after_the_last_ack(cache):
    callbacks = Settled()
    core = XdsCore(cache, group_of=lambda node, identity: "g", callbacks=callbacks)
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.CLUSTER, node_id=NODE))
        cds = await ads.recv()
        await ads.settle()
        assert callbacks.settled == []  # CDS awaits its ACK
        assert core.sync_statuses([ads.stream.stream_id])[0]["settled"] is False
        assert core.sync_statuses([ads.stream.stream_id, 12345], settled_only=True) == []
        # Envoy's order: EDS is asked for while the clusters warm, before the CDS ACK (the
        # stream may tell it settled after each ACK that leaves nothing due).
        ads.send(sotw_request(types.ENDPOINT, CLUSTERS))
        ads.send(ack(cds))
        ads.send(ack(await ads.recv(), CLUSTERS))
        await ads.settle()
        assert callbacks.settled == [ads.stream.stream_id]
        assert core.sync_statuses([ads.stream.stream_id])[0]["settled"] is True
        assert core.sync_statuses([ads.stream.stream_id], settled_only=True) == core.sync_statuses(
            [ads.stream.stream_id])
        ads.send(sotw_request(types.ENDPOINT, CLUSTERS, nonce="stale"))
        await ads.settle()
        assert callbacks.settled == [ads.stream.stream_id]  # nothing sent: no new event
        cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", 9001)])])
        pushed = await ads.recv()
        await ads.settle()
        assert len(callbacks.settled) == 1
        ads.send(nack(pushed, "bad", CLUSTERS))  # a NACK answers it too
        await ads.settle()
        assert callbacks.settled == [ads.stream.stream_id] * 2


def test_the_pool_of_subscriptions_is_bounded_and_shares_equal_ones():
    pool = SubscriptionPool(limit=3, max_names=100)
    shared = pool.names(["a", "b"])
    assert pool.names({"b", "a"}) is shared
    for i in range(5):
        pool.names([f"x{i}"])
    assert pool.names(["a", "b"]) is not shared  # evicted: the least recently asked for
    big = pool.names(str(i) for i in range(150))  # beyond the budget: returned, not kept
    assert big == {str(i) for i in range(150)} and pool.names(set(big)) is not big
    key, names = pool.add(b"k" * 640, ["q"])
    assert pool.known(b"k" * 640) == (key, names) and names == {"q"}
    pool.add(b"z" * 6400, ["r"])  # 100 units: the budget evicts the rest
    assert pool.known(b"k" * 640) is None


async def test_a_whole_set_is_one_shared_response_and_a_resend_has_a_nonce_of_its_own(
    cache, core
):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as one, StreamDouble(core) as two:
        eds_one = await subscribe_all(one)
        eds_two = await subscribe_all(two)
        assert eds_one.SerializeToString() == eds_two.SerializeToString()  # nonce included
        # Every cluster changes, the endpoints do not: Envoy re-warms every cluster, so the
        # same EDS set goes out whole again, with a nonce new to this stream.
        cache.update_resources(
            "g", types.CLUSTER, [r.cluster(n, timeout_ms=3000) for n in CLUSTERS]
        )
        cds = await one.recv()
        assert cds.type_url == types.CLUSTER
        one.send(ack(cds))
        again = await one.recv()
        assert again.type_url == types.ENDPOINT and names(again) == list(CLUSTERS)
        assert again.version_info == eds_one.version_info and again.nonce != eds_one.nonce
        assert list(again.resources) == list(eds_one.resources)
        one.send(ack(eds_one, CLUSTERS))  # a late answer to the first: stale
        await one.settle()
        assert eds_state(one).pending
        one.send(ack(again, CLUSTERS))
        await one.settle()
        assert not eds_state(one).pending
