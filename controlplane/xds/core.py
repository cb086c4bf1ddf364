"""The transport-free heart of the xDS server: streams, hooks, NACK records and counters."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Iterable

from envoy.config.core.v3 import base_pb2

from controlplane.xds import types
from controlplane.xds.auth import (
    Authenticate,
    CallInfo,
    GroupOf,
    Identity,
    PermissionDenied,
    Unauthenticated,
    group_by_node_id,
    no_authentication,
)
from controlplane.xds.cache import SnapshotCache
from controlplane.xds.callbacks import StreamInfo, XdsCallbacks
from controlplane.xds.limits import (
    NewStreamRate,
    PushSlot,
    PushThrottle,
    ResourceExhausted,
    StreamOwners,
    XdsLimits,
)
from controlplane.xds.shared import SubscriptionPool
from controlplane.xds.status import Counters, NackRecord
from controlplane.xds.stream import DELTA, SOTW, Stream

log = logging.getLogger(__name__)


class XdsCore:
    def __init__(
        self,
        cache: SnapshotCache,
        *,
        group_of: GroupOf = group_by_node_id,
        authenticate: Authenticate = no_authentication,
        callbacks: XdsCallbacks | None = None,
        identifier: str = "controlplane",
        nack_history: int = 1000,
        limits: XdsLimits | None = None,
    ) -> None:
        self.cache = cache
        self.group_of = group_of
        self.authenticate = authenticate
        self.callbacks = callbacks or XdsCallbacks()
        self.control_plane = base_pb2.ControlPlane(identifier=identifier)
        self.counters = Counters()
        self.nacks: collections.deque[NackRecord] = collections.deque(maxlen=nack_history)
        self.streams: dict[int, Stream] = {}
        self.limits = limits = limits or XdsLimits()
        self.new_streams = NewStreamRate(
            limits.new_streams_per_second, limits.new_streams_burst, limits.new_stream_max_wait
        )
        self.throttle = PushThrottle(limits.max_concurrent_pushes, limits.push_send_timeout)
        self.owners = StreamOwners(limits)
        self.subscriptions = SubscriptionPool()  # equal subscriptions held once

    # --- streams -------------------------------------------------------------------------------

    def open_stream(
        self, kind: str, call: CallInfo | None = None, type_url: str | None = None
    ) -> Stream:
        """A stream object to drive with `stream.run(requests)` (tests use it to watch state)."""
        return Stream(self, kind, call or CallInfo(), type_url)

    def sotw(
        self, requests: AsyncIterator, call: CallInfo | None = None, type_url: str | None = None
    ) -> AsyncIterator[bytes]:
        """Serve one state-of-the-world stream (ADS when type_url is None); yields response bytes.
        Requests are messages, or their bytes (as XdsServer gives them: see Stream._parse)."""
        return Stream(self, SOTW, call or CallInfo(), type_url).run(requests)

    def delta(
        self, requests: AsyncIterator, call: CallInfo | None = None, type_url: str | None = None
    ) -> AsyncIterator[bytes]:
        """Serve one delta stream (ADS when type_url is None); yields response bytes.
        Requests are messages, or their bytes (as XdsServer gives them: see Stream._parse)."""
        return Stream(self, DELTA, call or CallInfo(), type_url).run(requests)

    async def admit(self, stream: Stream) -> None:
        """A new stream's turn (Istio's PILOT_MAX_REQUESTS_PER_SECOND): it waits for a token
        up to ``new_stream_max_wait``, else it is refused at once."""
        wait = self.new_streams.reserve()
        if wait is None:
            raise ResourceExhausted(
                "new_streams_rate",
                f"more than {self.limits.new_streams_per_second:g} new xDS streams per second; "
                "retry later",
            )
        if wait > 0:
            await asyncio.sleep(wait)

    async def push_slot(self, stream: Stream) -> PushSlot:
        """A slot to build and hand over a response in (Istio's PILOT_PUSH_THROTTLE; see
        limits). Held past the send timeout, the stream is marked slow."""

        def timed_out() -> None:
            if not stream.slow:
                stream.slow = True
                self.counters.slow_streams += 1

        slot, waited = await self.throttle.acquire(timed_out)
        if waited > 0:
            self._call("on_push_queued", waited)
        return slot

    async def authenticate_stream(self, stream: Stream) -> Identity | None:
        try:
            return await self.authenticate(stream.call, stream.node)
        except Exception as error:
            self.counters.auth_failures += 1
            reason = {Unauthenticated: "unauthenticated", PermissionDenied: "permission_denied"}
            self.refused(reason.get(type(error), "authentication_error"), stream)
            raise

    def refused(self, reason: str, stream: Stream) -> None:
        """A stream ended by a limit or a failed authentication (counted; the runtime logs
        refusals in aggregate)."""
        self.counters.refused_by_reason[reason] += 1
        self._call("on_refused", reason, stream.call.peer)

    def attach(self, stream: Stream) -> None:
        """Register an authenticated stream; ResourceExhausted beyond its owner's cap."""
        stream.owner = self.owners.add(stream.identity, stream.call.peer)
        self.streams[stream.stream_id] = stream
        self.counters.streams_opened += 1
        self.cache.watch(stream)
        info = self.info(stream)
        log.debug(
            "xds stream %d open: node=%s group=%s identity=%s",
            stream.stream_id,
            stream.node.id,
            stream.group,
            stream.identity,
        )
        self._call("on_stream_open", info)
        if not self.cache.has_group(info.group):
            self._call("on_group_needed", info.group, info)

    def detach(self, stream: Stream) -> None:
        if self.streams.pop(stream.stream_id, None) is None:
            return
        self.owners.remove(stream.owner)
        self.counters.streams_closed += 1
        self.cache.unwatch(stream)
        log.debug("xds stream %d closed: node=%s", stream.stream_id, stream.node.id)
        self._call("on_stream_closed", self.info(stream))

    def settled(self, stream: Stream) -> None:
        """The stream sent responses and now has every one answered, with nothing more due."""
        self._call("on_stream_settled", stream.stream_id)

    def info(self, stream: Stream) -> StreamInfo:
        return StreamInfo(
            stream_id=stream.stream_id,
            kind=stream.kind,
            service=types.short_name(stream.service_type) if stream.service_type else "ADS",
            node=stream.node,
            identity=stream.identity,
            group=stream.group or "",
            peer=stream.call.peer,
        )

    def close_all(self) -> None:
        for stream in list(self.streams.values()):
            stream.close()

    # --- NACKs -----------------------------------------------------------------------------

    def record_nack(self, record: NackRecord, *, log_it: bool) -> None:
        self.nacks.append(record)
        self.counters.nacks_by_type[types.short_name(record.type_url)] += 1
        if log_it:
            log.warning(
                "xds NACK from node %s for %s version %s: %s",
                record.node_id,
                types.short_name(record.type_url),
                record.rejected_version or "?",
                record.error,
            )
        self._call("on_nack", record)

    # --- operators -------------------------------------------------------------------------

    def streams_status(self) -> list[dict[str, object]]:
        return [s.status() for _, s in sorted(self.streams.items())]

    def sync_statuses(
        self, stream_ids: Iterable[int], *, settled_only: bool = False
    ) -> list[dict[str, object]]:
        """Per type, only what was sent and ACKed when, for the given open streams (those
        settled alone: a push's 1,000 fresh streams, mostly not, cost no status each)."""
        streams = (self.streams.get(i) for i in stream_ids)
        return [s.sync_status() for s in streams if s is not None and (s.settled or not settled_only)]

    def recent_nacks(self) -> list[NackRecord]:
        return list(self.nacks)

    def _call(self, hook: str, *args: object) -> None:
        try:
            getattr(self.callbacks, hook)(*args)
        except Exception:
            log.exception("xds callback %s failed", hook)
