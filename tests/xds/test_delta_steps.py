"""Delta ADS streams follow a view's steps (issue 16): an endpoint change costs a stream a look
at the names that changed, not a plan over every name it holds, while subscriptions, removals
and ADS order stay exact (DESIGN.md section 4.8)."""

from __future__ import annotations

import logging

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, delta_ack, delta_request
from tests.xds.support import CLUSTERS, NODE, count_plans, port_of, snapshot


def names(response) -> list[str]:
    return sorted(res.name for res in response.resources)


async def connect(ads: StreamDouble) -> None:
    """CDS (wildcard), EDS for every cluster, LDS, RDS: each answered and ACKed, as Envoy does."""
    asked = ((types.CLUSTER, ()), (types.ENDPOINT, CLUSTERS), (types.LISTENER, ()),
             (types.ROUTE, ("routes",)))
    for type_url, subscribe in asked:
        ads.send(delta_request(type_url, subscribe, node_id=NODE))
        response = await ads.recv()
        assert response.type_url == type_url
        if type_url in (types.CLUSTER, types.ENDPOINT):
            assert names(response) == list(CLUSTERS)
        ads.send(delta_ack(response))
    await ads.settle()


async def test_endpoint_changes_and_their_acks_cost_no_full_plan(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as ads:
        await connect(ads)
        planned = count_plans(ads.stream)
        for port in (9001, 9002, 9003):
            cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", port)])])
            pushed = await ads.recv()
            assert pushed.type_url == types.ENDPOINT and names(pushed) == ["b"]
            assert port_of(pushed, "b") == port and not pushed.removed_resources
            ads.send(delta_ack(pushed))  # an ACK wakes the stream: nothing is planned again
            await ads.settle()
            assert ads.pending() == []
        assert planned == [], "wake-ups (pushes, ACKs) planned every name again"
        # What the client holds is the view's own map, not a copy per stream.
        for type_url in (types.CLUSTER, types.ENDPOINT):
            assert ads.stream.types[type_url].sent is cache.resources("g", type_url).versions


async def test_a_nacked_step_is_not_resent_and_a_newer_version_goes(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as ads:
        await connect(ads)
        cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", 9201)])])
        rejected = await ads.recv()
        ads.send(delta_request(types.ENDPOINT, nonce=rejected.nonce, error="bad endpoint"))
        await ads.settle()
        assert ads.pending() == [], "the rejected version is not sent again in a loop"
        status = core.streams_status()[0]["types"]["EDS"]
        assert status["last_nack"]["error"] == "bad endpoint"
        cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", 9202)])])
        newer = await ads.recv()
        assert names(newer) == ["b"] and port_of(newer, "b") == 9202


async def test_a_changed_subscription_is_honoured_between_steps(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as ads:
        await connect(ads)
        ads.send(delta_request(types.ENDPOINT, [], ["a"]))
        await ads.settle()
        assert ads.pending() == []
        # A step changing an unsubscribed name and a subscribed one: only the latter goes.
        cache.update_resources("g", types.ENDPOINT, [r.assignment("a", [("127.0.0.1", 9101)]),
                                                     r.assignment("c", [("127.0.0.1", 9102)])])
        pushed = await ads.recv()
        assert names(pushed) == ["c"] and port_of(pushed, "c") == 9102
        ads.send(delta_ack(pushed))
        # Subscribed again: sent at its current version; a name with no assignment gets an
        # empty one (Envoy waits for every cluster's EDS).
        ads.send(delta_request(types.ENDPOINT, ["a", "nope"]))
        again = await ads.recv()
        assert names(again) == ["a", "nope"] and port_of(again, "a") == 9101
        assert not r.decode_resources(again)["nope"].endpoints and not again.removed_resources
        ads.send(delta_ack(again))
        await ads.settle()
        assert ads.pending() == []
        cache.update_resources("g", types.ENDPOINT, [r.assignment("a", [("127.0.0.1", 9103)])])
        assert port_of(await ads.recv(), "a") == 9103


async def test_a_removed_cluster_still_goes_after_the_routes_using_it(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as ads:
        await connect(ads)
        snap = snapshot()
        snap[types.CLUSTER] = [r.cluster(n) for n in ("a", "b")]
        snap[types.ROUTE] = [r.route_config("routes", [("/", "b")]),
                             r.route_config("other", [("/", "b")])]
        cache.set_snapshot("g", snap)
        rds = await ads.recv()  # the route leaves c first; c stays while the route is unanswered
        assert rds.type_url == types.ROUTE and names(rds) == ["routes"]
        ads.send(delta_request(types.CLUSTER, nonce="stale"))  # a wake-up changing nothing
        await ads.settle()
        assert ads.pending() == []
        ads.send(delta_ack(rds))
        cds = await ads.recv()
        assert cds.type_url == types.CLUSTER and names(cds) == []
        assert list(cds.removed_resources) == ["c"]
        ads.send(delta_ack(cds))
        await ads.settle()
        assert ads.pending() == [], "a removal is sent once"
        clusters = ads.stream.types[types.CLUSTER]
        assert clusters.sent is cache.resources("g", types.CLUSTER).versions
        # A cluster added later is sent as usual.
        snap[types.CLUSTER].append(r.cluster("d"))
        cache.set_snapshot("g", snap)
        added = await ads.recv()
        assert added.type_url == types.CLUSTER and names(added) == ["d"]
        assert not added.removed_resources


async def test_debug_log_describes_requests_and_responses(cache, core, caplog):
    cache.set_snapshot("g", snapshot())
    caplog.set_level(logging.DEBUG, logger="controlplane.xds.stream")
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ENDPOINT, ["a", "nope"], node_id=NODE))
        await ads.recv()
        await ads.settle()
    lines = [record.getMessage() for record in caplog.records]
    assert any("request: EDS +['a', 'nope'] -[] nonce=''" in line for line in lines), lines
    assert any("response:" in line and "+['a', 'nope'] -[]" in line for line in lines), lines


def test_an_updated_set_derives_the_versions_streams_compare_with():
    from controlplane.xds.resources import TypeResources

    first = TypeResources.build(types.ENDPOINT, [r.assignment(n, [("127.0.0.1", 1)]) for n in "abc"])
    held = first.versions  # what streams hold: the set before
    before = dict(held)
    replaced = first.updated([r.assignment("b", [("127.0.0.1", 2)])])
    added = replaced.updated([r.assignment("d", [("127.0.0.1", 3)])])
    for updated in (replaced, added):
        assert updated.versions == {n: res.version for n, res in updated.by_name.items()}
    assert replaced.versions["b"] != held["b"] and "d" in added.versions
    assert held == before, "the map streams hold is never changed in place"
