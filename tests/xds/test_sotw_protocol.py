"""State-of-the-world ADS rules (DESIGN.md section 4), driven through a stream double."""

from __future__ import annotations

import asyncio
import logging

from controlplane.xds import SnapshotCache, XdsCore, types
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, nack, sotw_request
from tests.xds.support import NODE, base_snapshot, connect_cds, names


async def test_node_is_remembered_from_the_first_request(cache: SnapshotCache):
    seen = []
    core = XdsCore(cache, group_of=lambda n, identity: seen.append(n.id) or "g")
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        ads.send(sotw_request(types.ENDPOINT, ["a"]))  # no node on later requests
        eds = await ads.recv()
        assert names(eds) == ["a"]
        assert seen == [NODE]
        status = core.streams_status()[0]
        assert status["node_id"] == NODE and status["group"] == "g"


async def test_legacy_wildcard_cds_gets_the_full_set_and_a_missing_name_is_a_delete(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        first = await connect_cds(ads)
        assert names(first) == ["a", "b"]
        snap = base_snapshot()
        snap[types.CLUSTER] = [r.cluster("a")]
        cache.set_snapshot("g", snap)
        second = await ads.recv()
        assert names(second) == ["a"]  # b deleted by omission
        assert second.version_info != first.version_info


async def test_nothing_is_sent_when_nothing_changed(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        await ads.settle()
        cache.set_snapshot("g", base_snapshot())  # same content, rebuilt
        await ads.settle()
        assert ads.pending() == []
        assert core.counters.pushes_by_type["CDS"] == 1


async def test_nack_keeps_last_good_config_and_is_not_resent_in_a_loop(cache, core, caplog):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        good = await connect_cds(ads)
        cache.set_snapshot("g", base_snapshot(timeout_ms=5))
        bad = await ads.recv()
        with caplog.at_level(logging.WARNING, logger="controlplane.xds"):
            ads.send(nack(bad, "bad cluster a", accepted_version=good.version_info))
            await ads.settle()
            # The proxy repeats its NACK (as Envoy does on a re-request): still no resend.
            ads.send(nack(bad, "bad cluster a", accepted_version=good.version_info))
            await ads.settle()
        assert ads.pending() == []
        nack_logs = [rec for rec in caplog.records if "NACK" in rec.getMessage()]
        assert len(nack_logs) == 1
        cds = core.streams_status()[0]["types"]["CDS"]
        assert cds["last_nack"]["error"] == "bad cluster a"
        assert cds["last_nack"]["version"] == bad.version_info
        assert cds["version_acked"] == good.version_info
        assert core.recent_nacks()[0].error == "bad cluster a"
        assert core.counters.nacks_by_type["CDS"] == 2  # counted each time, logged once
        # A corrected config goes out again.
        cache.set_snapshot("g", base_snapshot(timeout_ms=2000))
        fixed = await ads.recv()
        assert fixed.version_info not in (good.version_info, bad.version_info)


async def test_request_with_stale_nonce_is_ignored(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        ads.send(sotw_request(types.ROUTE, ["routes"]))
        first = await ads.recv()
        ads.send(ack(first, ["routes"]))
        snap = base_snapshot()
        snap[types.ROUTE] = [
            r.route_config("routes", [("/", "b")]),
            r.route_config("other", [("/", "b")]),
        ]
        cache.set_snapshot("g", snap)
        second = await ads.recv()
        # A request answering the superseded response asks for "other": ignored.
        ads.send(sotw_request(types.ROUTE, ["routes", "other"], nonce=first.nonce))
        await ads.settle()
        assert ads.pending() == []
        assert core.streams_status()[0]["types"]["RDS"]["subscribed"] == ["routes"]
        # The same change with the current nonce is honoured.
        ads.send(sotw_request(types.ROUTE, ["routes", "other"], nonce=second.nonce))
        third = await ads.recv()
        assert names(third) == ["other"]  # "routes" is unchanged: the client keeps it


async def test_wildcard_transitions(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        legacy = await connect_cds(ads)
        assert names(legacy) == ["a", "b"]
        # Legacy wildcard -> explicit names: only those.
        ads.send(sotw_request(types.CLUSTER, ["a"], nonce=legacy.nonce))
        explicit = await ads.recv()
        assert names(explicit) == ["a"]
        # Names -> names plus explicit "*": everything again.
        ads.send(sotw_request(types.CLUSTER, ["a", "*"], nonce=explicit.nonce))
        star = await ads.recv()
        assert names(star) == ["a", "b"]
        # After names were sent, an empty list is no longer a wildcard: nothing.
        ads.send(sotw_request(types.CLUSTER, [], nonce=star.nonce))
        empty = await ads.recv()
        assert names(empty) == []


async def test_eds_answers_what_was_asked_with_empty_assignment_for_unknown(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        ads.send(sotw_request(types.ENDPOINT, ["a", "unknown"]))
        eds = await ads.recv()
        decoded = r.decode_resources(eds)
        assert sorted(decoded) == ["a", "unknown"]
        assert len(decoded["unknown"].endpoints) == 0
        assert len(decoded["a"].endpoints) == 1


async def test_rds_answers_only_what_exists_of_what_was_asked(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.ROUTE, ["routes", "missing"], node_id=NODE))
        rds = await ads.recv()
        assert names(rds) == ["routes"]


async def test_endpoints_resent_after_their_cluster_changed(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        cds = await connect_cds(ads)
        ads.send(sotw_request(types.ENDPOINT, ["a", "b"]))
        eds = await ads.recv()
        ads.send(ack(eds, ["a", "b"]))
        await ads.settle()
        cache.set_snapshot("g", base_snapshot(timeout_ms=3000))  # cluster a only
        cds2 = await ads.recv()
        assert cds2.type_url == types.CLUSTER and cds2.version_info != cds.version_info
        eds2 = await ads.recv()  # same endpoints, sent again so the re-created cluster warms
        assert eds2.type_url == types.ENDPOINT
        assert "a" in names(eds2)


async def test_listener_waits_for_cds_ack_and_endpoints(cache, core):
    cache.set_snapshot("g", base_snapshot(extra_cluster=False))
    async with StreamDouble(core) as ads:
        cds = await connect_cds(ads)
        ads.send(sotw_request(types.ENDPOINT, ["a"]))
        eds = await ads.recv()
        ads.send(ack(eds, ["a"]))
        ads.send(sotw_request(types.LISTENER))
        lds = await ads.recv()
        ads.send(ack(lds))
        await ads.settle()
        # Push: a new cluster c and a listener that uses it.
        snap = base_snapshot(extra_cluster=False)
        snap[types.CLUSTER].append(r.cluster("c"))
        snap[types.ENDPOINT].append(r.assignment("c", [("127.0.0.3", 80)]))
        snap[types.LISTENER].append(r.http_listener("l2", "127.0.0.1", 10001, "routes"))
        cache.set_snapshot("g", snap)
        cds2 = await ads.recv()
        assert cds2.type_url == types.CLUSTER
        await ads.settle()
        assert ads.pending() == []  # the listener waits for the new cluster's endpoints ...
        ads.send(sotw_request(types.ENDPOINT, ["a", "c"], nonce=eds.nonce))
        eds2 = await ads.recv()
        # Only the new cluster's assignment: a and its cluster did not change.
        assert eds2.type_url == types.ENDPOINT and names(eds2) == ["c"]
        await ads.settle()
        assert ads.pending() == []  # ... and for the EDS ACK ...
        ads.send(ack(eds2, ["a", "c"]))
        await ads.settle()
        assert ads.pending() == []  # ... and for the CDS ACK (sent once clusters warmed)
        ads.send(ack(cds2))
        lds2 = await ads.recv()
        assert lds2.type_url == types.LISTENER and names(lds2) == ["l1", "l2"]
        assert cds.version_info != cds2.version_info


async def test_never_the_same_name_twice_in_one_response(cache, core):
    snap = base_snapshot()
    snap[types.CLUSTER] = [r.cluster("a"), r.cluster("a", timeout_ms=7)]
    cache.set_snapshot("g", snap)
    async with StreamDouble(core) as ads:
        response = await connect_cds(ads)
        assert len(response.resources) == 1


async def test_versions_are_derived_from_content(cache, core):
    other_cache = SnapshotCache()
    other_core = XdsCore(other_cache, group_of=lambda n, i: "g")
    cache.set_snapshot("g", base_snapshot())
    other_cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as one, StreamDouble(other_core) as two:
        first = await connect_cds(one)
        second = await connect_cds(two)
        assert first.version_info == second.version_info
        first.ClearField("nonce")  # opaque, per response: the rest is the content's
        second.ClearField("nonce")
        assert first.SerializeToString() == second.SerializeToString()


async def test_reconnect_with_the_current_version_gets_no_resend(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        first = await connect_cds(ads)
    async with StreamDouble(core) as again:
        again.send(sotw_request(types.CLUSTER, version=first.version_info, node_id=NODE))
        await again.settle()
        assert again.pending() == []
        cache.set_snapshot("g", base_snapshot(timeout_ms=9))
        changed = await again.recv()
        assert changed.version_info != first.version_info


async def test_stream_waits_for_a_snapshot_and_the_runtime_is_told(cache):
    from controlplane.xds import XdsCallbacks

    class Recorder(XdsCallbacks):
        def __init__(self):
            self.events = []

        def on_group_needed(self, group, info):
            self.events.append(("needed", group, info.node.id))

        def on_stream_closed(self, info):
            self.events.append(("closed", info.group, info.node.id))

    recorder = Recorder()
    core = XdsCore(cache, group_of=lambda n, i: "grp-" + n.id, callbacks=recorder)
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.CLUSTER, node_id="p1"))
        await ads.settle()
        assert ads.pending() == []
        assert recorder.events == [("needed", "grp-p1", "p1")]
        cache.set_snapshot("grp-p1", base_snapshot())
        response = await ads.recv()
        assert names(response) == ["a", "b"]
    assert recorder.events[-1] == ("closed", "grp-p1", "p1")


async def test_slow_stream_does_not_delay_others(cache, core):
    cache.set_snapshot("g", base_snapshot())
    slow = core.open_stream("sotw")
    slow_requests: asyncio.Queue = asyncio.Queue()

    async def slow_source():
        while True:
            yield await slow_requests.get()

    slow_requests.put_nowait(sotw_request(types.CLUSTER, node_id="slow"))
    slow_responses = slow.run(slow_source())
    await anext(slow_responses)  # then never reads again, like a stuck proxy
    try:
        async with StreamDouble(core) as fast:
            await connect_cds(fast)
            for timeout in (11, 12, 13):
                cache.set_snapshot("g", base_snapshot(timeout_ms=timeout))
                update = await fast.recv()
                fast.send(ack(update))
    finally:
        await slow_responses.aclose()


async def test_single_type_service_serves_only_its_type(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, type_url=types.ENDPOINT) as eds:
        request = sotw_request(
            "", ["a"], node_id=NODE
        )  # type_url may be empty on a single-type service
        eds.send(request)
        response = await eds.recv()
        assert response.type_url == types.ENDPOINT and names(response) == ["a"]
        eds.send(sotw_request(types.CLUSTER, nonce=""))
        await eds.settle()
        assert eds.pending() == []


async def test_identity_secrets_reach_only_that_identity(cache):
    async def authenticate(call, n):
        return call.metadata_value("x-identity")

    from controlplane.xds import CallInfo

    core = XdsCore(cache, group_of=lambda n, i: "g", authenticate=authenticate)
    cache.set_snapshot("g", r.snapshot(secrets=[r.trust_bundle_secret("ROOTCA", "root")]))
    cache.set_identity_resources(
        "spiffe://cluster.local/ns/a/sa/x", types.SECRET, [r.trust_bundle_secret("default", "x")]
    )
    alice = CallInfo(metadata=(("x-identity", "spiffe://cluster.local/ns/a/sa/x"),))
    mallory = CallInfo(metadata=(("x-identity", "spiffe://cluster.local/ns/b/sa/y"),))
    async with StreamDouble(core, call=alice) as a, StreamDouble(core, call=mallory) as m:
        a.send(sotw_request(types.SECRET, ["default", "ROOTCA"], node_id="a"))
        m.send(sotw_request(types.SECRET, ["default", "ROOTCA"], node_id="m"))
        assert names(await a.recv()) == ["ROOTCA", "default"]
        assert names(await m.recv()) == ["ROOTCA"]
        assert core.streams_status()[0]["identity"] == "spiffe://cluster.local/ns/a/sa/x"


async def test_authentication_failure_ends_the_stream(cache):
    from controlplane.xds import PermissionDenied

    async def deny(call, n):
        raise PermissionDenied("claims another namespace")

    core = XdsCore(cache, authenticate=deny)
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.CLUSTER, node_id="x"))
        assert isinstance(await ads.ended(), PermissionDenied)
    assert core.counters.auth_failures == 1
    assert core.streams_status() == []


async def test_a_deleted_cluster_stays_until_the_routes_using_it_are_replaced(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        ads.send(sotw_request(types.ENDPOINT, ["a", "b"]))
        eds = await ads.recv()
        ads.send(ack(eds, ["a", "b"]))
        ads.send(sotw_request(types.ROUTE, ["other"]))  # "other" routes to b
        rds = await ads.recv()
        ads.send(ack(rds, ["other"]))
        await ads.settle()
        # b goes away and "other" now routes to a.
        snap = base_snapshot(extra_cluster=False)
        snap[types.ROUTE] = [
            r.route_config("routes", [("/", "a")]),
            r.route_config("other", [("/", "a")]),
        ]
        cache.set_snapshot("g", snap)
        rds2 = await ads.recv()  # b and its endpoints are kept: the routes go first
        assert rds2.type_url == types.ROUTE
        await ads.settle()
        assert ads.pending() == []  # b goes only once the new routes are ACKed
        ads.send(ack(rds2, ["other"]))
        cds_final = await ads.recv()
        assert cds_final.type_url == types.CLUSTER and names(cds_final) == ["a"]


async def test_a_changed_cluster_goes_out_at_once_with_the_deleted_one_kept(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        ads.send(sotw_request(types.ROUTE, ["other"]))
        rds = await ads.recv()
        ads.send(ack(rds, ["other"]))
        await ads.settle()
        snap = base_snapshot(extra_cluster=False, timeout_ms=2222)
        snap[types.ROUTE] = [
            r.route_config("routes", [("/", "a")]),
            r.route_config("other", [("/", "a")]),
        ]
        cache.set_snapshot("g", snap)
        cds_keep = await ads.recv()
        assert cds_keep.type_url == types.CLUSTER and names(cds_keep) == ["a", "b"]
        decoded = r.decode_resources(cds_keep)
        assert decoded["a"].connect_timeout.seconds == 2
        ads.send(ack(cds_keep))
        rds2 = await ads.recv()
        assert rds2.type_url == types.ROUTE
        ads.send(ack(rds2, ["other"]))
        cds_final = await ads.recv()
        assert names(cds_final) == ["a"]
