"""Endpoints updated in place (SnapshotCache.update_resources): a stream in sync with the
set before looks only at the names that changed, and sends what a full comparison would."""

from __future__ import annotations

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, delta_ack, delta_request, nack
from tests.xds.test_sotw_incremental import CLUSTERS, NODE, names, port_of, snapshot, subscribe_all


async def test_sotw_an_updated_assignment_goes_alone_with_the_version_of_the_whole_set(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        await subscribe_all(ads)
        cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", 9001)])])
        pushed = await ads.recv()
        assert pushed.type_url == types.ENDPOINT and names(pushed) == ["b"]
        assert port_of(pushed, "b") == 9001
        # The same version a full snapshot of the same content gets (stable across restarts).
        assert pushed.version_info == cache.resources("g", types.ENDPOINT).version
        reference = snapshot({"b": 9001})
        cache.set_snapshot("other", reference)
        assert pushed.version_info == cache.resources("other", types.ENDPOINT).version
        ads.send(ack(pushed, CLUSTERS))
        await ads.settle()
        assert ads.pending() == []

        # Rejected: kept out until a newer version comes, which goes out.
        cache.update_resources("g", types.ENDPOINT, [r.assignment("c", [("127.0.0.1", 9002)])])
        rejected = await ads.recv()
        assert names(rejected) == ["c"]
        ads.send(nack(rejected, "bad endpoint", CLUSTERS, accepted_version=pushed.version_info))
        await ads.settle()
        assert ads.pending() == []
        cache.update_resources("g", types.ENDPOINT, [r.assignment("c", [("127.0.0.1", 9003)])])
        newer = await ads.recv()
        assert names(newer) == ["c"] and port_of(newer, "c") == 9003
        ads.send(ack(newer, CLUSTERS))
        await ads.settle()

        # Two steps while the client had a response in flight: both names arrive.
        cache.update_resources("g", types.ENDPOINT, [r.assignment("a", [("127.0.0.1", 9004)])])
        first = await ads.recv()
        cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", 9005)])])
        ads.send(ack(first, CLUSTERS))
        second = await ads.recv()
        assert names(first) == ["a"] and names(second) == ["b"] and port_of(second, "b") == 9005

        # A changed cluster still gets its (unchanged) assignment again to finish warming.
        ads.send(ack(second, CLUSTERS))
        await ads.settle()
        current = {n: res for n, res in cache.resources("g", types.ENDPOINT).by_name.items()}
        full = snapshot(timeouts={"a": 3000})
        full[types.ENDPOINT] = [(n, res.message()) for n, res in current.items()]
        cache.set_snapshot("g", full)
        cds = await ads.recv()
        assert cds.type_url == types.CLUSTER
        ads.send(ack(cds))
        eds = await ads.recv()
        assert eds.type_url == types.ENDPOINT and names(eds) == ["a"] and port_of(eds, "a") == 9004


async def test_delta_an_updated_assignment_goes_alone(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ENDPOINT, list(CLUSTERS), node_id=NODE))
        first = await ads.recv()
        assert sorted(res.name for res in first.resources) == list(CLUSTERS)
        ads.send(delta_ack(first))
        await ads.settle()
        cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", 9001)])])
        pushed = await ads.recv()
        assert [res.name for res in pushed.resources] == ["b"] and not pushed.removed_resources
        assert pushed.system_version_info == cache.resources("g", types.ENDPOINT).version
        ads.send(delta_ack(pushed))
        await ads.settle()
        assert ads.pending() == []
        # Unsubscribed names are not sent, even when they change.
        ads.send(delta_request(types.ENDPOINT, [], unsubscribe=["c"]))
        await ads.settle()
        cache.update_resources("g", types.ENDPOINT, [r.assignment("c", [("127.0.0.1", 9002)]),
                                                     r.assignment("a", [("127.0.0.1", 9003)])])
        again = await ads.recv()
        assert [res.name for res in again.resources] == ["a"]


def test_a_set_remembers_its_last_steps_and_what_each_replaced():
    from controlplane.xds.resources import STEPS_KEPT, TypeResources

    first = TypeResources.build(types.ENDPOINT, [r.assignment(n, [("127.0.0.1", 1)]) for n in "abc"])
    views = [first]
    for port in range(2, STEPS_KEPT + 3):
        views.append(views[-1].updated([r.assignment("abc"[port % 3], [("127.0.0.1", port)])]))
    last = views[-1]
    assert last.changed_since(views[-2].serial) == {"abc"[(STEPS_KEPT + 2) % 3]}
    assert last.changed_since(views[-4].serial) == {"a", "b", "c"}
    assert last.changed_since(first.serial) is None, "too far back: compared in full"
    # A name added is no step a stream can follow.
    added = last.updated([r.assignment("d", [("127.0.0.1", 1)])])
    assert added.changed_since(last.serial) is None
    assert last.updated([r.assignment("a", [("127.0.0.1", STEPS_KEPT + 10)])]).changed_since(
        last.serial) == {"a"}
    assert last.updated([]) is last, "nothing replaced: the same set"
