"""SotW EDS/RDS carry only what changed for this stream (Istio's incremental EDS).

Envoy keeps the subscribed EDS/RDS/SDS resources a SotW response leaves out, so a push sends the
resources whose version differs from what the stream's client holds or has in flight, newly
subscribed names, and the assignments of clusters that changed (they re-warm on them).
"""

from __future__ import annotations

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, nack, sotw_request
from tests.xds.support import CLUSTERS, NODE, names, port_of, snapshot, subscribe_all


async def test_an_endpoint_change_sends_only_that_assignment(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        first = await subscribe_all(ads)
        cache.set_snapshot("g", snapshot({"b": 9001}))
        pushed = await ads.recv()
        assert pushed.type_url == types.ENDPOINT
        assert names(pushed) == ["b"]
        assert port_of(pushed, "b") == 9001
        # version_info is the version of the type as a whole: it moves with any change.
        assert pushed.version_info != first.version_info
        ads.send(ack(pushed, CLUSTERS))
        await ads.settle()
        assert ads.pending() == []  # no CDS, no resend of a or c
        cache.set_snapshot("g", snapshot({"b": 9001, "c": 9002}))
        again = await ads.recv()
        assert names(again) == ["c"]  # b's new version is already held


async def test_a_changed_cluster_still_gets_its_assignment_and_only_it(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        await subscribe_all(ads)
        cache.set_snapshot("g", snapshot(timeouts={"a": 3000}))  # cluster a, same endpoints
        cds = await ads.recv()
        assert cds.type_url == types.CLUSTER and names(cds) == list(CLUSTERS)  # full set
        eds = await ads.recv()
        assert eds.type_url == types.ENDPOINT and names(eds) == ["a"]


async def test_a_newly_subscribed_name_gets_its_assignment_alone(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        first = await subscribe_all(ads, ("a", "b"))
        ads.send(sotw_request(types.ENDPOINT, ["a", "b", "c", "unknown"], nonce=first.nonce))
        added = await ads.recv()
        decoded = r.decode_resources(added)
        assert sorted(decoded) == ["c", "unknown"]
        assert len(decoded["unknown"].endpoints) == 0  # answered even if it does not exist
        # Dropped and asked again: the client forgot it, so it is sent again.
        ads.send(sotw_request(types.ENDPOINT, ["a", "b", "c"], nonce=added.nonce))
        await ads.settle()
        ads.send(sotw_request(types.ENDPOINT, ["a", "c"], nonce=added.nonce))
        await ads.settle()
        assert ads.pending() == []
        ads.send(sotw_request(types.ENDPOINT, ["a", "b", "c"], nonce=added.nonce))
        assert names(await ads.recv()) == ["b"]


async def test_nack_then_fix(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        good = await subscribe_all(ads)
        cache.set_snapshot("g", snapshot({"a": 1}))
        bad = await ads.recv()
        assert names(bad) == ["a"]
        ads.send(nack(bad, "bad endpoint a", CLUSTERS, accepted_version=good.version_info))
        await ads.settle()
        assert ads.pending() == []  # the rejected version is not sent again in a loop
        eds = core.streams_status()[0]["types"]["EDS"]
        assert eds["last_nack"]["version"] == bad.version_info
        assert eds["version_acked"] == good.version_info
        # Another assignment changes: only it goes out, not the rejected a.
        cache.set_snapshot("g", snapshot({"a": 1, "b": 9001}))
        other = await ads.recv()
        assert names(other) == ["b"]
        ads.send(ack(other, CLUSTERS))
        await ads.settle()
        assert ads.pending() == []
        # The fix goes out.
        cache.set_snapshot("g", snapshot({"a": 9000, "b": 9001}))
        fixed = await ads.recv()
        assert names(fixed) == ["a"] and port_of(fixed, "a") == 9000
        ads.send(ack(fixed, CLUSTERS))
        await ads.settle()
        # A later change to the once-rejected content is a new push: it goes out.
        cache.set_snapshot("g", snapshot({"a": 1, "b": 9001}))
        assert names(await ads.recv()) == ["a"]


async def test_after_a_nack_the_stream_knows_the_proxy_kept_its_last_good_version(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        good = await subscribe_all(ads)
        cache.set_snapshot("g", snapshot({"a": 1}))
        bad = await ads.recv()
        ads.send(nack(bad, "bad endpoint a", CLUSTERS, accepted_version=good.version_info))
        await ads.settle()
        assert core.streams_status()[0]["types"]["EDS"]["pending_ack"] is False
        # The change is reverted: the proxy still holds that version, so nothing is due ...
        cache.set_snapshot("g", snapshot())
        await ads.settle()
        assert ads.pending() == []
        # ... while a cluster change re-sends the held assignment as the rules require.
        cache.set_snapshot("g", snapshot(timeouts={"a": 3000}))
        assert (await ads.recv()).type_url == types.CLUSTER
        eds = await ads.recv()
        assert names(eds) == ["a"] and port_of(eds, "a") == 8080


async def test_a_reconnecting_client_gets_everything_it_asks_for(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        await subscribe_all(ads)
        cache.set_snapshot("g", snapshot({"b": 9001}))
        assert names(await ads.recv()) == ["b"]
    async with StreamDouble(core) as ads:
        await subscribe_all(ads)  # asserts the full set of asked names


async def test_rds_push_sends_only_the_changed_route(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.ROUTE, ["routes", "other"], node_id=NODE))
        first = await ads.recv()
        assert names(first) == ["other", "routes"]
        ads.send(ack(first, ["routes", "other"]))
        await ads.settle()
        snap = snapshot()
        snap[types.ROUTE] = [
            r.route_config("routes", [("/", "a")]),
            r.route_config("other", [("/", "c")]),
        ]
        cache.set_snapshot("g", snap)
        pushed = await ads.recv()
        assert names(pushed) == ["other"]
        assert pushed.version_info != first.version_info
