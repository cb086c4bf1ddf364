"""Endpoints updated in place (SnapshotCache.update_resources): a stream in sync with the
set before looks only at the names that changed, and sends what a full comparison would."""

from __future__ import annotations

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, delta_ack, delta_request, nack, sotw_request
from tests.xds.support import CLUSTERS, NODE, count_plans, names, port_of, snapshot, subscribe_all


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


async def test_sotw_a_full_snapshot_replacing_a_few_resources_is_a_step(cache, core):
    """A full push (set_snapshot) that keeps every name and replaces one assignment and one
    route configuration: streams follow it as a step (no plan over the ~1,400 EDS names each
    holds), send what a full plan would, and LDS, a full-state type, still goes whole. Each
    type given as prepared tuples, the unchanged ones the very same, as the pusher does."""
    from controlplane.xds.resources import prepare

    def prepared(resources, kept=None):
        made = {t: tuple(prepare(t, item) for item in items) for t, items in resources.items()}
        return made | (kept or {})

    def two_listeners(resources, port=10000):
        resources[types.LISTENER] = [r.http_listener("l1", "127.0.0.1", port, "routes"),
                                     r.http_listener("l2", "127.0.0.1", 10002, "other")]
        return resources

    initial = prepared(two_listeners(snapshot()))
    cache.set_snapshot("g", initial)
    async with StreamDouble(core) as ads:
        await subscribe_all(ads)
        ads.send(sotw_request(types.LISTENER))
        lds = await ads.recv()
        ads.send(ack(lds))
        ads.send(sotw_request(types.ROUTE, ["routes", "other"]))
        rds = await ads.recv()
        assert names(rds) == ["other", "routes"]
        ads.send(ack(rds, ["routes", "other"]))
        await ads.settle()
        planned = count_plans(ads.stream, "_plan_sotw")

        changed = snapshot({"b": 9001})
        changed[types.ROUTE] = [r.route_config("routes", [("/", "c")]), r.route_config("other", [("/", "b")])]
        same = {t: initial[t] for t in (types.CLUSTER, types.LISTENER)}
        cache.set_snapshot("g", prepared(changed, same))
        eds = await ads.recv()
        assert eds.type_url == types.ENDPOINT and names(eds) == ["b"] and port_of(eds, "b") == 9001
        assert eds.version_info == cache.resources("g", types.ENDPOINT).version
        ads.send(ack(eds, CLUSTERS))
        routes = await ads.recv()
        assert routes.type_url == types.ROUTE and names(routes) == ["routes"]
        assert routes.version_info == cache.resources("g", types.ROUTE).version
        ads.send(ack(routes, ["routes", "other"]))
        await ads.settle()
        assert ads.pending() == []
        assert [t for t in planned if t != "CDS"] == [], "a step planned every name again"
        # What the client holds is the new view's own map again (shared, no copy).
        assert ads.stream.types[types.ENDPOINT].sent is cache.resources("g", types.ENDPOINT).versions

        # A listener replaced (same names): SotW LDS carries the whole set, as always.
        listeners = two_listeners(snapshot({"b": 9001}), port=10001)
        listeners[types.ROUTE] = changed[types.ROUTE]
        cache.set_snapshot("g", prepared(listeners, {types.CLUSTER: initial[types.CLUSTER]}))
        lds_again = await ads.recv()
        assert lds_again.type_url == types.LISTENER and names(lds_again) == ["l1", "l2"]
        assert lds_again.version_info == cache.resources("g", types.LISTENER).version


def test_a_set_built_anew_with_the_same_names_records_what_it_replaced():
    from controlplane.xds.resources import TypeResources

    def assignments(ports: dict[str, int]):
        return [r.assignment(n, [("127.0.0.1", p)]) for n, p in sorted(ports.items())]

    first = TypeResources.build(types.ENDPOINT, assignments({"a": 1, "b": 1, "c": 1}))
    second = TypeResources.build(types.ENDPOINT, assignments({"a": 1, "b": 2, "c": 1}), first)
    assert second.changed_since(first.serial) == {"b"}
    third = TypeResources.build(types.ENDPOINT, assignments({"a": 3, "b": 2, "c": 1}), second)
    assert third.changed_since(first.serial) == {"a", "b"}
    assert third.changed_since(second.serial) == {"a"}
    # Names added or gone: no step (a stream plans in full).
    fewer = TypeResources.build(types.ENDPOINT, assignments({"a": 3, "b": 2}), third)
    assert fewer.changed_since(third.serial) is None
    # CDS and LDS never: a SotW response of theirs carries the whole set.
    clusters = TypeResources.build(types.CLUSTER, [r.cluster("a", timeout_ms=1000)])
    again = TypeResources.build(types.CLUSTER, [r.cluster("a", timeout_ms=2000)], clusters)
    assert again.changed_since(clusters.serial) is None
