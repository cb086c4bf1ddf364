"""Random DiscoveryRequest / DeltaDiscoveryRequest sequences through the stream double, with
pushes in between: no exception escapes (a stream ends, if at all, with a limit's refusal),
every response decodes, and no per-stream state grows past the limits, whatever a client
sends (names, nonces, versions, NACK text, type URLs, in any order)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.xds import SnapshotCache, XdsCore, types
from controlplane.xds.limits import UNLIMITED, Refused
from controlplane.xds.stream import Stream
from tests.harness.xds_double import StreamDouble, delta_request, sotw_request
from tests.xds.support import NODE, base_snapshot

LIMITS = replace(
    UNLIMITED,
    max_request_bytes=3000,
    max_names_per_subscription=8,
    max_names_per_stream=12,
    max_name_bytes=100,
    max_types_per_stream=5,
    max_kept_text=100,
)
# What a wildcard or the server adds beyond what the client named: the snapshot's resources.
SERVER_RESOURCES = 4

TYPE_URLS = [
    types.CLUSTER, types.ENDPOINT, types.LISTENER, types.ROUTE, types.SECRET,
    types.EXTENSION_CONFIG, "type.googleapis.com/made.up.One", "type.googleapis.com/made.up.Two",
    "type.googleapis.com/made.up.Three", "", "type.googleapis.com/" + "LongType" * 12,
]
NAMES = st.one_of(
    st.sampled_from(["a", "b", "other", "routes", "l1", "*", "default", "ROOTCA"]),
    st.builds(lambda i: f"n{i}", st.integers(0, 30)),
    st.text(max_size=30),
    st.text(min_size=95, max_size=120),
)
TEXT = st.one_of(st.just(""), st.text(max_size=20), st.text(min_size=60, max_size=300))


@dataclass
class Send:
    type_url: str
    names: list[str]
    unsubscribe: list[str]
    nonce: int | str | None  # an index into the nonces received, a made-up one, or none
    version: str | int | None  # SotW: an index into the versions received, or made up
    error: str | None
    initial: dict[str, str] = field(default_factory=dict)


@dataclass
class Push:
    timeout_ms: int
    extra_cluster: bool


def sends() -> st.SearchStrategy[Send]:
    return st.builds(
        Send,
        type_url=st.sampled_from(TYPE_URLS),
        names=st.lists(NAMES, max_size=12),
        unsubscribe=st.lists(NAMES, max_size=4),
        nonce=st.one_of(st.none(), st.integers(0, 20), TEXT),
        version=st.one_of(st.none(), st.integers(0, 20), TEXT),
        error=st.one_of(st.none(), TEXT),
        initial=st.dictionaries(NAMES, TEXT, max_size=10),
    )


ACTIONS = st.lists(
    st.one_of(sends(), sends(), sends(), st.builds(Push, st.integers(1, 5000), st.booleans())),
    min_size=1,
    max_size=25,
)


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def request_of(action: Send, delta: bool, first: bool, seen: list) -> object:
    nonce = action.nonce
    if isinstance(nonce, int):
        nonce = seen[nonce % len(seen)].nonce if seen else ""
    node_id = NODE if first else None
    if delta:
        return delta_request(
            action.type_url, action.names, action.unsubscribe, nonce=nonce or "",
            initial=action.initial, node_id=node_id, error=action.error,
        )
    version = action.version
    if isinstance(version, int):
        version = seen[version % len(seen)].version_info if seen else ""
    return sotw_request(action.type_url, action.names, nonce=nonce or "", version=version or "",
                        node_id=node_id, error=action.error)


async def settle(ads: StreamDouble) -> None:
    """Until the server consumed every request and has nothing to send, or ended the stream."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while True:
        for _ in range(3):
            await asyncio.sleep(0)
        if ads.stream.closed or ads.error is not None:
            await ads.ended()
            return
        if ads._requests.empty() and ads.stream.idle and not ads.stream._wake.is_set():
            return
        assert loop.time() < end, "the stream did not settle"
        await asyncio.sleep(0.001)


def check_bounds(stream: Stream, core: XdsCore) -> None:
    assert len(stream.types) <= LIMITS.max_types_per_stream
    assert sum(len(s.names) for s in stream.types.values()) <= LIMITS.max_names_per_stream
    bound = LIMITS.max_names_per_subscription + SERVER_RESOURCES
    for state in stream.types.values():
        assert len(state.names) <= LIMITS.max_names_per_subscription
        for held in (state.sent, state.held, state.in_flight, state.rejected, state.force,
                     state.owed, state.resources, state.check_missing):
            assert len(held) <= bound, (state.type_url, held)
        assert len(state.nacked_versions) <= 64
        assert max(map(len, state.names), default=0) <= LIMITS.max_name_bytes
    for record in core.recent_nacks():
        assert len(record.error) <= LIMITS.max_kept_text + 40
        assert len(record.node_id) <= LIMITS.max_kept_text + 40


async def drive(actions: list, delta: bool) -> None:
    cache = SnapshotCache()
    cache.set_snapshot("g", base_snapshot())
    core = XdsCore(cache, group_of=lambda node, identity: "g", limits=LIMITS)
    seen: list = []
    async with StreamDouble(core, delta=delta) as ads:
        first = True
        for action in actions:
            if isinstance(action, Push):
                snapshot = base_snapshot(timeout_ms=action.timeout_ms,
                                         extra_cluster=action.extra_cluster)
                cache.set_snapshot("g", snapshot)
            else:
                ads.send(request_of(action, delta, first, seen))
                first = False
            if first:
                continue  # the stream starts with its first request
            await settle(ads)
            seen += ads.pending()  # each decoded: a malformed response fails here
            if ads.error is not None:
                assert isinstance(ads.error, Refused), repr(ads.error)
                assert ads.stream.types == {}  # nothing of a refused client is kept
                return
            check_bounds(ads.stream, core)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS, delta=st.booleans())
def test_random_request_sequences_stay_within_bounds(actions: list, delta: bool) -> None:
    errors = Errors()
    logger = logging.getLogger("controlplane.xds")
    logger.addHandler(errors)
    try:
        asyncio.run(drive(actions, delta))
    finally:
        logger.removeHandler(errors)
    assert errors.records == [], [r.getMessage() for r in errors.records]
