"""Delta ADS rules (DESIGN.md section 4.8), driven through a stream double."""

from __future__ import annotations

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, delta_ack, delta_request
from tests.xds.support import NODE, base_snapshot


def names(response) -> list[str]:
    return sorted(res.name for res in response.resources)


async def test_wildcard_cds_then_delete_sends_removed_resources(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.CLUSTER, node_id=NODE))  # legacy wildcard
        first = await ads.recv()
        assert names(first) == ["a", "b"]
        assert all(res.version for res in first.resources)  # per-resource versions
        ads.send(delta_ack(first))
        snap = base_snapshot()
        snap[types.CLUSTER] = [r.cluster("a")]
        cache.set_snapshot("g", snap)
        second = await ads.recv()
        assert names(second) == [] and list(second.removed_resources) == ["b"]


async def test_only_changed_resources_are_sent(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ENDPOINT, ["a", "b"], node_id=NODE))
        first = await ads.recv()
        ads.send(delta_ack(first))
        snap = base_snapshot()
        snap[types.ENDPOINT][1] = r.assignment("b", [("127.0.0.9", 1)])
        cache.set_snapshot("g", snap)
        second = await ads.recv()
        assert names(second) == ["b"]
        ads.send(delta_ack(second))
        await ads.settle()
        assert ads.pending() == []


async def test_subscribe_unsubscribe_and_resubscribe(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ROUTE, ["routes"], node_id=NODE))
        first = await ads.recv()
        assert names(first) == ["routes"]
        ads.send(delta_ack(first))
        ads.send(delta_request(types.ROUTE, ["other"], ["routes"]))
        second = await ads.recv()
        assert names(second) == ["other"] and list(second.removed_resources) == []
        ads.send(delta_ack(second))
        # An unsubscribed resource changing is not sent.
        snap = base_snapshot()
        snap[types.ROUTE][0] = r.route_config("routes", [("/x", "b")])
        cache.set_snapshot("g", snap)
        await ads.settle()
        assert ads.pending() == []
        # Subscribing again always sends it.
        ads.send(delta_request(types.ROUTE, ["routes"]))
        third = await ads.recv()
        assert names(third) == ["routes"]
        ads.send(delta_ack(third))
        # ... even when the client is thought to have it already.
        ads.send(delta_request(types.ROUTE, ["routes"]))
        fourth = await ads.recv()
        assert names(fourth) == ["routes"]


async def test_subscribed_name_that_does_not_exist_is_reported_removed(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ROUTE, ["nope", "routes"], node_id=NODE))
        response = await ads.recv()
        assert names(response) == ["routes"]
        assert list(response.removed_resources) == ["nope"]
        ads.send(delta_ack(response))
        await ads.settle()
        assert ads.pending() == []  # said once, not in a loop
        # When it appears later it is sent.
        snap = base_snapshot()
        snap[types.ROUTE].append(r.route_config("nope", [("/", "a")]))
        cache.set_snapshot("g", snap)
        assert names(await ads.recv()) == ["nope"]


async def test_subscription_changes_count_whatever_the_nonce(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ROUTE, ["routes"], node_id=NODE))
        first = await ads.recv()
        ads.send(delta_request(types.ROUTE, ["other"], nonce="stale-or-unknown"))
        second = await ads.recv()
        assert names(second) == ["other"]
        assert first.nonce != second.nonce


async def test_reconnect_honours_initial_resource_versions(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.CLUSTER, node_id=NODE))
        first = await ads.recv()
    have = {res.name: res.version for res in first.resources}
    snap = base_snapshot(timeout_ms=4321)  # cluster a changes while the proxy is away
    snap[types.CLUSTER].append(r.cluster("new"))
    cache.set_snapshot("g", snap)
    have["gone"] = "0123"
    async with StreamDouble(core, delta=True) as again:
        again.send(delta_request(types.CLUSTER, initial=have, node_id=NODE))
        response = await again.recv()
        assert names(response) == ["a", "new"]  # b unchanged: not resent
        assert list(response.removed_resources) == ["gone"]


async def test_nack_is_recorded_and_not_resent(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.CLUSTER, node_id=NODE))
        first = await ads.recv()
        ads.send(delta_ack(first))
        cache.set_snapshot("g", base_snapshot(timeout_ms=7))
        bad = await ads.recv()
        ads.send(delta_request(types.CLUSTER, nonce=bad.nonce, error="invalid cluster a"))
        await ads.settle()
        assert ads.pending() == []
        status = core.streams_status()[0]["types"]["CDS"]
        assert status["last_nack"]["error"] == "invalid cluster a"
        assert status["version_acked"] == first.system_version_info
        cache.set_snapshot("g", base_snapshot(timeout_ms=8))
        assert names(await ads.recv()) == ["a"]


async def test_explicit_wildcard_and_its_removal(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.CLUSTER, ["a"], node_id=NODE))  # names: not a wildcard
        first = await ads.recv()
        assert names(first) == ["a"]
        ads.send(delta_request(types.CLUSTER, ["*"], nonce=first.nonce))
        second = await ads.recv()
        assert names(second) == ["b"]  # the client already has a
        ads.send(delta_request(types.CLUSTER, [], ["*"], nonce=second.nonce))
        await ads.settle()
        snap = base_snapshot(extra_cluster=False)
        snap[types.CLUSTER].append(r.cluster("b", timeout_ms=77))
        cache.set_snapshot("g", snap)  # b changes, but b is no longer subscribed
        await ads.settle()
        assert ads.pending() == []


async def test_endpoints_resent_after_their_cluster_changed(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.CLUSTER, node_id=NODE))
        cds = await ads.recv()
        ads.send(delta_ack(cds))
        ads.send(delta_request(types.ENDPOINT, ["a", "b"]))
        eds = await ads.recv()
        ads.send(delta_ack(eds))
        ads.send(delta_request(types.LISTENER))
        lds = await ads.recv()
        ads.send(delta_ack(lds))
        await ads.settle()
        snap = base_snapshot(timeout_ms=2500)
        snap[types.LISTENER].append(r.http_listener("l2", "127.0.0.1", 10002, "routes"))
        cache.set_snapshot("g", snap)
        cds2 = await ads.recv()
        assert cds2.type_url == types.CLUSTER and names(cds2) == ["a"]
        # Endpoints of the re-created cluster follow at once (Envoy ACKs CDS once it warmed).
        eds2 = await ads.recv()
        assert eds2.type_url == types.ENDPOINT and names(eds2) == ["a"]
        await ads.settle()
        assert ads.pending() == []  # the listener waits for the CDS ACK ...
        ads.send(delta_ack(cds2))
        await ads.settle()
        assert ads.pending() == []  # ... and the EDS ACK
        ads.send(delta_ack(eds2))
        lds2 = await ads.recv()
        assert lds2.type_url == types.LISTENER and names(lds2) == ["l2"]


async def test_a_deleted_cluster_is_removed_after_the_routes_using_it(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.CLUSTER, node_id=NODE))
        cds = await ads.recv()
        ads.send(delta_ack(cds))
        ads.send(delta_request(types.ROUTE, ["other"]))
        rds = await ads.recv()
        ads.send(delta_ack(rds))
        await ads.settle()
        snap = base_snapshot(extra_cluster=False)
        snap[types.ROUTE] = [
            r.route_config("routes", [("/", "a")]),
            r.route_config("other", [("/", "a")]),
        ]
        cache.set_snapshot("g", snap)
        rds2 = await ads.recv()  # nothing to add to CDS: the routes go first
        assert rds2.type_url == types.ROUTE
        await ads.settle()
        assert ads.pending() == []
        ads.send(delta_ack(rds2))
        cds2 = await ads.recv()
        assert cds2.type_url == types.CLUSTER and list(cds2.removed_resources) == ["b"]
