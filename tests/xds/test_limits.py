"""What one xDS client can make the server hold or do is bounded (DESIGN.md section 5), and a
stream beyond a cap ends with a status that names it. Before these limits a delta stream
could subscribe to any number of names of any length (a few 14 MB subscriptions took the
server from 68 MB to about 1 GB) and open any number of streams."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from controlplane.xds import CallInfo, types
from controlplane.xds.limits import (
    InvalidArgument,
    NewStreamRate,
    ResourceExhausted,
    XdsLimits,
    peer_address,
)
from tests.harness.xds_double import (
    StreamDouble,
    ack,
    delta_request,
    nack,
    sotw_request,
)
from tests.xds.support import NODE, SMALL, base_snapshot, connect_cds, eds_names, limited, refusal


async def test_a_request_over_the_byte_limit_is_refused(cache):
    core = limited(cache, replace(SMALL, max_names_per_subscription=0, max_names_per_stream=0))
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ENDPOINT, eds_names(100), node_id=NODE))
        error = await refusal(ads)
    assert isinstance(error, ResourceExhausted) and error.reason == "request_bytes"
    assert "at most 4000" in str(error)
    assert core.counters.refused_by_reason == {"request_bytes": 1}
    assert core.streams_status() == []


async def test_a_sotw_subscription_over_the_name_cap_is_refused(cache):
    core = limited(cache)
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        ads.send(sotw_request(types.ENDPOINT, eds_names(11)))
        error = await refusal(ads)
    assert error.reason == "names_per_subscription" and error.code == "RESOURCE_EXHAUSTED"


async def test_delta_subscriptions_accumulate_up_to_the_cap_per_type(cache):
    """Delta subscriptions add up over requests; each alone is small."""
    core = limited(cache)
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ENDPOINT, eds_names(6), node_id=NODE))
        await ads.recv()
        ads.send(delta_request(types.ENDPOINT, eds_names(6, start=6)))
        error = await refusal(ads)
    assert error.reason == "names_per_subscription"


async def test_delta_unsubscribing_keeps_a_stream_within_the_cap(cache):
    core = limited(cache)
    async with StreamDouble(core, delta=True) as ads:
        for start in range(0, 60, 6):  # 60 names over time, never more than 6 at once
            old = eds_names(6, start=start - 6) if start else []
            ads.send(delta_request(types.ENDPOINT, eds_names(6, start=start), old, node_id=NODE))
            await ads.recv()
        await ads.settle()
        (state,) = core.streams[ads.stream.stream_id].types.values()
        assert len(state.names) == 6


async def test_names_of_every_type_count_against_the_stream(cache):
    core = limited(cache)
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.ENDPOINT, eds_names(8), node_id=NODE))
        await ads.recv()
        ads.send(delta_request(types.ROUTE, [f"route-{i}" for i in range(8)]))
        error = await refusal(ads)
    assert error.reason == "names_per_stream"


async def test_initial_versions_count_as_names(cache):
    core = limited(cache)
    async with StreamDouble(core, delta=True) as ads:
        held = {name: "v1" for name in eds_names(11)}
        ads.send(delta_request(types.ENDPOINT, initial=held, node_id=NODE))
        error = await refusal(ads)
    assert error.reason == "names_per_subscription"


@pytest.mark.parametrize(
    "request_",
    [
        sotw_request(types.ENDPOINT, ["x" * 101], node_id=NODE),
        sotw_request(types.CLUSTER, version="v" * 101, node_id=NODE),
        delta_request(types.ENDPOINT, initial={"a": "v" * 101}, node_id=NODE),
        sotw_request("type.googleapis.com/" + "T" * 100, node_id=NODE),
    ],
    ids=["name", "version", "initial version", "type URL"],
)
async def test_overlong_names_are_invalid(cache, request_):
    core = limited(cache)
    delta = request_.DESCRIPTOR.name == "DeltaDiscoveryRequest"
    async with StreamDouble(core, delta=delta) as ads:
        ads.send(request_)
        error = await refusal(ads)
    assert isinstance(error, InvalidArgument) and error.reason == "name_bytes"
    assert error.code == "INVALID_ARGUMENT"


async def test_a_stream_may_ask_for_a_few_types_only(cache):
    core = limited(cache)
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        for i in range(4):
            ads.send(sotw_request(f"type.googleapis.com/made.up.Type{i}"))
        error = await refusal(ads)
    assert error.reason == "types_per_stream"


async def test_streams_per_identity_are_capped(cache):
    async def authenticate(call, node):
        return call.metadata_value("x-identity")

    core = limited(cache, authenticate=authenticate)
    alice = CallInfo(metadata=(("x-identity", "alice"),), peer="ipv4:10.0.0.1:1")
    bob = CallInfo(metadata=(("x-identity", "bob"),), peer="ipv4:10.0.0.1:2")
    async with StreamDouble(core, call=alice) as a1, StreamDouble(core, call=alice) as a2:
        await connect_cds(a1)
        await connect_cds(a2)
        async with StreamDouble(core, call=alice) as a3:
            a3.send(sotw_request(types.CLUSTER, node_id=NODE))
            error = await refusal(a3)
        assert error.reason == "streams_per_identity"
        async with StreamDouble(core, call=bob) as b:  # another identity, same address
            await connect_cds(b)
    async with StreamDouble(core, call=alice) as again:  # the first two ended: room again
        await connect_cds(again)
    assert core.counters.refused_by_reason == {"streams_per_identity": 1}


async def test_streams_without_identity_are_capped_per_peer_address(cache):
    core = limited(cache)
    calls = [CallInfo(peer=f"ipv4:10.0.0.1:{port}") for port in (1001, 1002, 1003)]
    async with StreamDouble(core, call=calls[0]) as s1, StreamDouble(core, call=calls[1]) as s2:
        await connect_cds(s1)
        await connect_cds(s2)
        async with StreamDouble(core, call=calls[2]) as s3:  # same host, another port
            s3.send(sotw_request(types.CLUSTER, node_id=NODE))
            assert (await refusal(s3)).reason == "streams_per_peer"
        async with StreamDouble(core, call=CallInfo(peer="ipv4:10.0.0.2:1001")) as other:
            await connect_cds(other)


def test_peer_address_drops_the_port():
    assert peer_address("ipv4:10.0.0.1:5555") == "ipv4:10.0.0.1"
    assert peer_address("ipv6:[::1]:5555") == "ipv6:[::1]"
    assert peer_address("unix:/run/xds.sock") == "unix:/run/xds.sock"


def test_new_stream_rate_waits_then_refuses():
    now = [0.0]
    rate = NewStreamRate(rate=10, burst=2, max_wait=0.25, clock=lambda: now[0])
    assert [rate.reserve(), rate.reserve()] == [0.0, 0.0]  # the burst
    assert rate.reserve() == pytest.approx(0.1)  # the next token, 100 ms away
    assert rate.reserve() == pytest.approx(0.2)
    assert rate.reserve() is None  # 300 ms away: longer than a stream may wait
    now[0] = 1.0  # refilled (to the burst, no more)
    assert [rate.reserve(), rate.reserve()] == [0.0, 0.0]
    assert NewStreamRate(rate=0, burst=1, max_wait=0).reserve() == 0.0  # 0: no limit


async def test_new_streams_beyond_the_rate_are_refused(cache):
    core = limited(cache, replace(SMALL, new_streams_per_second=0.5, new_streams_burst=1,
                                  new_stream_max_wait=0.01))
    async with StreamDouble(core) as first:
        await connect_cds(first)
        async with StreamDouble(core) as second:
            second.send(sotw_request(types.CLUSTER, node_id=NODE))
            error = await refusal(second)
    assert error.reason == "new_streams_rate" and error.code == "RESOURCE_EXHAUSTED"


async def stalled_after_one_response(stream):
    """The stream's responses after its client asked for CDS and took one response; it
    never asks for more (a proxy that stopped reading)."""
    requests: asyncio.Queue = asyncio.Queue()

    async def source():
        while True:
            yield await requests.get()

    requests.put_nowait(sotw_request(types.CLUSTER, node_id="stalled"))
    responses = stream.run(source())
    return responses, await anext(responses)


async def test_a_stalled_stream_gives_its_push_slot_back(cache):
    """One push slot; a stream whose client took one response and never reads again holds
    it only until the send timeout, and never again after: the other stream is served.
    (Every response keeps its slot here, however small: see the next test.)"""
    core = limited(cache, replace(SMALL, max_concurrent_pushes=1, push_send_timeout=0.2,
                                  push_slot_min_bytes=0))
    stalled = core.open_stream("sotw")
    responses, _ = await stalled_after_one_response(stalled)  # the slot is held from here
    try:
        async with StreamDouble(core) as other:
            await connect_cds(other)
            for timeout in (2000, 3000):
                cache.set_snapshot("g", base_snapshot(timeout_ms=timeout))
                update = await other.recv()
                assert update.type_url == types.CLUSTER
                other.send(ack(update))
        assert stalled.slow and core.counters.slow_streams == 1
    finally:
        await responses.aclose()
    assert core.throttle.in_use == 0


async def test_a_small_response_is_handed_over_without_its_slot(cache):
    """Responses under push_slot_min_bytes keep their slot while built, not while gRPC takes
    them: a stream whose client does not read holds none, and is not made slow."""
    core = limited(cache, replace(SMALL, max_concurrent_pushes=1, push_send_timeout=0.2))
    stalled = core.open_stream("sotw")
    responses, first = await stalled_after_one_response(stalled)
    try:
        assert len(first) < core.limits.push_slot_min_bytes
        assert core.throttle.in_use == 0
        async with StreamDouble(core) as other:
            await connect_cds(other)
            cache.set_snapshot("g", base_snapshot(timeout_ms=2000))
            assert (await other.recv()).type_url == types.CLUSTER
        await asyncio.sleep(0.3)  # past the send timeout: no slot was held to time out
        assert not stalled.slow and core.counters.slow_streams == 0
        assert core.throttle.in_use == 0
    finally:
        await responses.aclose()


async def test_builds_wait_for_a_push_slot(cache):
    """With every slot taken, a due response waits; it goes out once a slot is free."""
    core = limited(cache, replace(SMALL, max_concurrent_pushes=1))
    held, _ = await core.throttle.acquire()
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.CLUSTER, node_id=NODE))
        for _ in range(5):
            await asyncio.sleep(0)
        assert ads.pending() == []
        held.release()
        assert (await ads.recv()).type_url == types.CLUSTER


async def test_client_text_is_clipped_where_it_is_kept(cache):
    core = limited(cache)
    async with StreamDouble(core) as ads:
        response = await connect_cds(ads)
        cache.set_snapshot("g", base_snapshot(timeout_ms=3000))
        update = await ads.recv()
        ads.send(nack(update, "e" * 3000))
        await ads.settle()
    (record,) = core.recent_nacks()
    assert len(record.error) < 300 and record.error.startswith("e" * 200)
    assert response.version_info != update.version_info


def test_limits_are_checked():
    with pytest.raises(ValueError, match="negative"):
        XdsLimits(max_names_per_stream=-1)
    with pytest.raises(ValueError, match="new_streams_burst"):
        XdsLimits(new_streams_burst=0)
