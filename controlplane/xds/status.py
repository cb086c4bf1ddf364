"""Per-stream state as plain data for operators, and the server's counters."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NackRecord:
    stream_id: int
    node_id: str
    type_url: str
    rejected_version: str  # what we sent and the proxy refused ("" if unknown)
    nonce: str
    error: str
    at: float  # epoch seconds


@dataclass
class Counters:
    """Plain counters the lead wires to Prometheus later (no prometheus import here)."""

    pushes_by_type: collections.Counter[str] = field(default_factory=collections.Counter)
    nacks_by_type: collections.Counter[str] = field(default_factory=collections.Counter)
    acks_by_type: collections.Counter[str] = field(default_factory=collections.Counter)
    bytes_sent: int = 0
    streams_opened: int = 0
    streams_closed: int = 0
    auth_failures: int = 0
    # Streams ended by a limit or a failed authentication, by reason ("names_per_stream",
    # "unauthenticated", ...).
    refused_by_reason: collections.Counter[str] = field(default_factory=collections.Counter)
    # Streams whose proxy did not take a response within the push send timeout.
    slow_streams: int = 0

    @property
    def streams_active(self) -> int:
        return self.streams_opened - self.streams_closed

    def snapshot(self) -> dict[str, object]:
        return {
            "pushes_by_type": dict(self.pushes_by_type),
            "nacks_by_type": dict(self.nacks_by_type),
            "acks_by_type": dict(self.acks_by_type),
            "bytes_sent": self.bytes_sent,
            "streams_opened": self.streams_opened,
            "streams_closed": self.streams_closed,
            "streams_active": self.streams_active,
            "auth_failures": self.auth_failures,
            "refused_by_reason": dict(self.refused_by_reason),
            "slow_streams": self.slow_streams,
        }
