"""What a stream takes from a client, parsed and bounded before anything of it is kept: a
request's size, names and subscriptions within the limits (a client cannot make the server
hold more than they allow)."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import DecodeError, Message

from controlplane.xds import types
from controlplane.xds.limits import InvalidArgument, ResourceExhausted, XdsLimits, over
from controlplane.xds.state import TypeState

SOTW = "sotw"
DELTA = "delta"


def parse_request(kind: str, limits: XdsLimits, received: bytes | Message) -> tuple[Message, bytes | None]:
    """A request as the transport gave it: bytes from gRPC (XdsServer), bounded before they
    are parsed and kept beside the message (see Stream._apply_sotw), or a message (tests)."""
    if not isinstance(received, bytes):
        return received, None
    if over(len(received), limits.max_request_bytes):
        raise ResourceExhausted(
            "request_bytes",
            f"a request of {len(received)} bytes; at most {limits.max_request_bytes} are accepted",
        )
    message = discovery_pb2.DeltaDiscoveryRequest if kind == DELTA else discovery_pb2.DiscoveryRequest
    try:
        return message.FromString(received), received
    except DecodeError as error:
        raise InvalidArgument("malformed_request", f"a request that does not parse: {error}") from None


def check_request(kind: str, limits: XdsLimits, request, raw: bytes | None = None) -> None:  # type: ignore[no-untyped-def]
    """Refuse a request beyond the limits before anything of it is kept."""
    size = request.ByteSize() if raw is None else len(raw)  # (ByteSize serializes it)
    if over(size, limits.max_request_bytes):
        raise ResourceExhausted(
            "request_bytes",
            f"a request of {size} bytes; at most {limits.max_request_bytes} are accepted",
        )
    texts: tuple[str, ...]
    if kind == SOTW:
        counted = len(request.resource_names)
        texts = (request.type_url, request.version_info, request.response_nonce)
    else:
        counted = max(len(request.resource_names_subscribe), len(request.initial_resource_versions))
        texts = (request.type_url, request.response_nonce)
    if over(counted, limits.max_names_per_subscription):
        raise ResourceExhausted(
            "names_per_subscription",
            f"a request naming {counted} resources; a subscription may hold "
            f"{limits.max_names_per_subscription}",
        )
    check_names(limits, texts)


def check_names(limits: XdsLimits, names: Iterable[str]) -> None:
    """Names (and type URLs, versions, nonces) within the length limit; checked where the
    request's names are read anyway, so an ACK costs no second pass over them."""
    longest = max(map(len, names), default=0)
    if over(longest, limits.max_name_bytes):
        raise InvalidArgument(
            "name_bytes",
            f"a name, type URL, version or nonce of {longest} characters; "
            f"at most {limits.max_name_bytes} are accepted",
        )


def check_subscriptions(limits: XdsLimits, state: TypeState, states: Iterable[TypeState]) -> None:
    """What a stream subscribes to after a request (``state`` of one type among all its
    ``states``), within the limits."""
    if over(len(state.names), limits.max_names_per_subscription):
        raise ResourceExhausted(
            "names_per_subscription",
            f"{len(state.names)} resources subscribed to of type "
            f"{types.short_name(state.type_url)}; a subscription may hold "
            f"{limits.max_names_per_subscription}",
        )
    total = sum(len(s.names) for s in states)
    if over(total, limits.max_names_per_stream):
        raise ResourceExhausted(
            "names_per_stream",
            f"{total} resources subscribed to on one stream; at most {limits.max_names_per_stream} are accepted",
        )
