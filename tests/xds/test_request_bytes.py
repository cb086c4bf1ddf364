"""Requests given to a stream as bytes, as XdsServer's handlers are (gRPC deserializes nothing):
their length bounds them before they are parsed, and a SotW ACK's subscription is a slice of
them (shared.subscription_key), compared with the last one's in one memcmp. The slice must
never make a changed subscription look unchanged."""

from __future__ import annotations

from dataclasses import replace

from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds import stream as stream_module
from controlplane.xds import types
from controlplane.xds.limits import InvalidArgument, ResourceExhausted
from controlplane.xds.requests import parse_request
from controlplane.xds.shared import subscription_key
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, delta_request, nack, sotw_request
from tests.xds.support import NODE, SMALL, eds_names, limited, names, refusal, snapshot


def wire(request) -> bytes:
    return request.SerializeToString()


def key_both_ways(request: discovery_pb2.DiscoveryRequest) -> tuple[bytes, bytes]:
    raw = wire(request)
    parse = discovery_pb2.DiscoveryRequest.FromString
    return subscription_key(parse(raw), raw), subscription_key(parse(raw))


async def eds_as_bytes(ads: StreamDouble, eds: list[str]):
    """CDS asked for and ACKed, then EDS asked for, all as bytes; the EDS response."""
    ads.send(wire(sotw_request(types.CLUSTER, node_id=NODE)))
    ads.send(wire(ack(await ads.recv())))
    ads.send(wire(sotw_request(types.ENDPOINT, eds)))
    return await ads.recv()


def test_the_key_from_bytes_equals_the_key_of_the_message():
    for request in (
        sotw_request(types.ENDPOINT, ["a", "b"], nonce="7", version="v1"),
        sotw_request(types.ENDPOINT, ["a", "b"], nonce="7"),
        sotw_request(types.ENDPOINT, ["a", "b"], version="v1"),
        sotw_request(types.ENDPOINT, ["a", "b"]),
        sotw_request(types.CLUSTER),
        sotw_request(types.ENDPOINT, ["a"], node_id=NODE, nonce="1"),  # node: the full path
        sotw_request(types.ENDPOINT, ["a"], nonce="1", error="bad"),  # NACK: the full path
    ):
        from_bytes, from_message = key_both_ways(request)
        assert from_bytes == from_message
    # Every name counts, the last one included: a longer or changed last name moves the key.
    keys = {key_both_ways(sotw_request(types.ENDPOINT, tail, nonce="12", version="v"))[0]
            for tail in (["a", "b"], ["a", "b1"], ["a", "b\x2a"], ["a"], ["a", "b", "c"])}
    assert len(keys) == 5


def test_bytes_laid_out_otherwise_take_the_full_path():
    """A nonce written before the names (any order is valid protobuf): no slice is taken."""
    request = sotw_request(types.ENDPOINT, ["a", "b"], nonce="3", version="v1")
    reordered = (
        wire(discovery_pb2.DiscoveryRequest(response_nonce="3"))
        + wire(discovery_pb2.DiscoveryRequest(version_info="v1", resource_names=["a", "b"],
                                              type_url=types.ENDPOINT))
    )
    parsed = discovery_pb2.DiscoveryRequest.FromString(reordered)
    assert parsed == request
    assert subscription_key(parsed, reordered) == key_both_ways(request)[1]


async def test_acks_as_bytes_change_nothing_and_changed_names_are_honoured(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        first = await eds_as_bytes(ads, ["a", "b"])
        assert names(first) == ["a", "b"]
        ads.send(wire(ack(first, ["a", "b"])))
        await ads.settle()
        state = ads.stream.types[types.ENDPOINT]
        shared_names, shared_key = state.names, state.subscription_key
        assert ads.pending() == [] and shared_names == {"a", "b"}
        ads.send(wire(ack(first, ["a", "b"])))  # the same ACK again: nothing to do
        await ads.settle()
        assert ads.pending() == []
        assert state.names is shared_names and state.subscription_key is shared_key
        ads.send(wire(ack(first, ["a", "c"])))  # the last name changed
        assert names(await ads.recv()) == ["c"]
        assert state.names == {"a", "c"}


async def test_a_nack_as_bytes_is_recorded_and_not_resent(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        rejected = await eds_as_bytes(ads, ["a"])
        ads.send(wire(nack(rejected, "no", ["a"])))
        await ads.settle()
        assert ads.pending() == []
    (record,) = core.recent_nacks()
    assert record.error == "no" and record.type_url == types.ENDPOINT


async def test_a_request_over_the_byte_limit_is_refused_before_it_is_parsed(cache):
    core = limited(cache, replace(SMALL, max_names_per_subscription=0, max_names_per_stream=0))
    async with StreamDouble(core) as ads:
        ads.send(wire(sotw_request(types.ENDPOINT, eds_names(100), node_id=NODE)))
        error = await refusal(ads)
    assert isinstance(error, ResourceExhausted) and error.reason == "request_bytes"
    assert core.streams_status() == []


async def test_bytes_that_do_not_parse_end_the_stream_with_invalid_argument(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(wire(delta_request(types.CLUSTER, node_id=NODE)))
        await ads.recv()
        ads.send(b"\x0a\xff")  # a length running past the end
        error = await refusal(ads)
    assert isinstance(error, InvalidArgument) and error.reason == "malformed_request"
    assert core.counters.refused_by_reason == {"malformed_request": 1}


async def test_an_unchanged_ack_is_applied_from_its_bytes_and_anything_else_is_parsed(
    cache, core, monkeypatch
):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        first = await eds_as_bytes(ads, ["a", "b"])
        stream = ads.stream
        parsed = []

        def counted(kind, limits, received):
            parsed.append(received)
            return parse_request(kind, limits, received)

        monkeypatch.setattr(stream_module, "parse_request", counted)
        state = stream.types[types.ENDPOINT]
        ads.send(wire(ack(first, ["a", "b"])))
        await ads.settle()
        assert parsed == [] and not state.pending and state.version_acked == first.version_info
        seen = stream.requests_seen
        cache.update_resources("g", types.ENDPOINT, [r.assignment("b", [("127.0.0.1", 9001)])])
        second = await ads.recv()
        # The names changed in an otherwise exact ACK: parsed, and the new name is sent.
        ads.send(wire(ack(second, ["a", "c"])))
        assert names(await ads.recv()) == ["c"]
        assert len(parsed) == 1 and stream.requests_seen == seen + 1
        third_nonce = state.nonce_sent
        # A NACK of it (the version it had before, an error): parsed and recorded.
        ads.send(wire(sotw_request(types.ENDPOINT, ["a", "c"], nonce=third_nonce,
                                   version=second.version_info, error="bad")))
        await ads.settle()
        assert len(parsed) == 2 and core.recent_nacks()[-1].error == "bad"
        # An exact ACK of an earlier response: stale, parsed and ignored.
        ads.send(wire(ack(first, ["a", "b"])))
        await ads.settle()
        assert len(parsed) == 3 and stream.stale_ignored == 1 and ads.pending() == []
