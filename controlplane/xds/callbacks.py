"""Hooks through which the runtime learns about proxies. Subclass and override what you need.

Every hook is called on the event loop, must not block, and may not raise into the server
(exceptions are logged and swallowed). Schedule async work with asyncio.create_task.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2

from controlplane.xds.auth import Identity
from controlplane.xds.status import NackRecord


@dataclass(frozen=True)
class StreamInfo:
    stream_id: int
    kind: str  # "sotw" or "delta"
    service: str  # "ADS", or "CDS", "EDS", ... for a single-type service
    node: base_pb2.Node
    identity: Identity | None
    group: str
    peer: str


class XdsCallbacks:
    def on_group_needed(self, group: str, info: StreamInfo) -> None:
        """A stream joined a group that has no snapshot: translate for it (lazily)."""

    def on_stream_open(self, info: StreamInfo) -> None:
        """A proxy connected (after authentication and grouping)."""

    def on_stream_closed(self, info: StreamInfo) -> None:
        """A proxy's stream ended (disconnect, error or shutdown)."""

    def on_stream_settled(self, stream_id: int) -> None:
        """A stream that was sent responses has every one answered (ACK or NACK) and nothing
        more is due (its sync state: ``XdsServer.sync_statuses``). Once per settling, so
        convergence is observed without polling."""

    def on_nack(self, record: NackRecord) -> None:
        """A proxy rejected a response; the server keeps its last good config."""

    def on_refused(self, reason: str, peer: str) -> None:
        """A stream was refused or ended by a limit or by authentication (``reason`` as in
        ``Counters.refused_by_reason``); called once per stream, so log in aggregate."""

    def on_push_queued(self, seconds: float) -> None:
        """A stream waited this long for a push slot (Istio's pilot_proxy_queue_time)."""
