"""What an xDS client can make the server hold or do, bounded (DESIGN.md section 5).

Every cap refuses with a gRPC status that names it: RESOURCE_EXHAUSTED for a count or size
beyond a cap, INVALID_ARGUMENT for a malformed request. A refused stream ends; its client
retries with backoff, as Envoy does after any stream error.

Two of the limits are Istio's: new streams per second (``PILOT_MAX_REQUESTS_PER_SECOND``: a
token bucket; a new stream waits up to a second for a token, else RESOURCE_EXHAUSTED) and
concurrent pushes (``PILOT_PUSH_THROTTLE``: a stream holds a slot while it builds a response
and, unless it is small, until gRPC took it). Unlike istiod, whose slot is held until the
send returns however long a hung proxy makes that, a slot is given back after
``push_send_timeout`` and that stream is then known as slow: it never again holds a slot
while its sends wait, so proxies that stop reading cost the others one timeout each at most.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True)
class XdsLimits:
    # Bytes of one request (also gRPC's max receive message size): Istio's
    # ISTIO_GPRC_MAXRECVMSGSIZE is 4 MB too. A SotW request of 50,000 EDS names fits.
    max_request_bytes: int = 4 * MIB
    # Names one stream subscribes to, for one type and for all types together (a mesh of
    # 10,000 services with subsets has about 30,000 EDS clusters).
    max_names_per_subscription: int = 50_000
    max_names_per_stream: int = 100_000
    # Longest resource name, type URL or version a client may send (paths are up to 4 KiB).
    max_name_bytes: int = 4096
    # Distinct type URLs one ADS stream may ask for (Envoy uses 6 or 7).
    max_types_per_stream: int = 16
    # Open streams per proven identity, and per peer address for clients without one.
    # 0: no cap. Pods of one Deployment share an identity; Envoys of a laptop mesh a peer.
    max_streams_per_identity: int = 1_000
    max_streams_per_peer: int = 100
    # New streams per second (0: no limit), the burst allowed at once, and how long a new
    # stream may wait for its turn before it is refused. Istio's default is 25/s on 2 cores
    # (min(15 + 5 * cores, 100)) with no burst; measured here (benchmarks/reconnect_storm.py)
    # a limit that binds only lengthens a reconnect storm (2,000 proxies: 43 s at 100/s
    # against 9 s without) while the push throttle is what keeps the server responsive, so
    # this one is a backstop against connection floods.
    new_streams_per_second: float = 500.0
    new_streams_burst: int = 500
    new_stream_max_wait: float = 1.0
    # Streams building a response or waiting for gRPC to take it (0: no limit; Istio's
    # PILOT_PUSH_THROTTLE is 25 on 2 cores), and how long one may hold its slot while its
    # proxy does not read (0: as long as that takes, as istiod). Measured
    # (benchmarks/reconnect_storm.py, a push to 2,000 proxies of a 1,000-service mesh):
    # /healthz/ready answers in 6.7-8.8 s without the throttle, about 1 s with it.
    max_concurrent_pushes: int = 25
    push_send_timeout: float = 0.5
    # A response smaller than this is handed to gRPC without its slot (held while it is
    # built): its send costs little and holds little memory, and a slot held for each
    # send's round trip queued a push of small EDS updates to 1,000 proxies for longer
    # than it took to build them (benchmarks/stream_cost.py). 0: every response keeps its
    # slot until gRPC took it.
    push_slot_min_bytes: int = 16 * 1024
    # Client text kept for operators (NACK error_detail, node ids): clipped to this.
    max_kept_text: int = 4096

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"xDS limit {name} must not be negative, not {value}")
        if self.max_request_bytes < 1 or self.new_streams_burst < 1:
            raise ValueError("xDS limits max_request_bytes and new_streams_burst must be >= 1")

    def grpc_options(self) -> tuple[tuple[str, object], ...]:
        return (("grpc.max_receive_message_length", self.max_request_bytes),)


UNLIMITED = XdsLimits(
    max_request_bytes=2**31 - 1,
    max_names_per_subscription=0,
    max_names_per_stream=0,
    max_name_bytes=0,
    max_types_per_stream=0,
    max_streams_per_identity=0,
    max_streams_per_peer=0,
    new_streams_per_second=0,
    max_concurrent_pushes=0,
)


class Refused(Exception):
    """A request or stream beyond a limit; ends the stream with ``code``."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # short, for metrics labels: "names_per_stream", ...


class ResourceExhausted(Refused):
    code = "RESOURCE_EXHAUSTED"


class InvalidArgument(Refused):
    code = "INVALID_ARGUMENT"


def over(value: float, cap: float) -> bool:
    """Whether ``value`` is beyond ``cap`` (a cap of 0 means none)."""
    return bool(cap) and value > cap


def clip(text: str, limit: int) -> str:
    """Client text as kept for operators: at most ``limit`` characters, marked when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


def peer_address(peer: str) -> str:
    """The address part of a gRPC peer (``ipv4:10.0.0.1:5555`` -> ``ipv4:10.0.0.1``): all
    connections from one host count together."""
    if peer.startswith(("ipv4:", "ipv6:")) and ":" in peer[5:]:
        return peer.rsplit(":", 1)[0]
    return peer


@dataclass
class NewStreamRate:
    """A token bucket as Go's ``rate.Limiter``: ``reserve()`` says how long the caller must
    wait for its token, or None when that is longer than ``max_wait`` (refused, no token)."""

    rate: float
    burst: float
    max_wait: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False, repr=False)
    _updated: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._tokens, self._updated = float(self.burst), self.clock()  # a full bucket

    def reserve(self) -> float | None:
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        wait = (1.0 - self._tokens) / self.rate
        if wait > self.max_wait:
            return None
        self._tokens -= 1.0
        return wait


class PushSlot:
    """One of the throttle's slots, held while a stream builds a response and until gRPC
    took it; given back ``timeout`` after the handover began anyway (``on_timeout`` is
    told). Releasing twice is harmless."""

    def __init__(self, semaphore: asyncio.Semaphore | None, timeout: float = 0.0,
                 on_timeout: Callable[[], None] = lambda: None) -> None:
        self._semaphore = semaphore
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._timer: asyncio.TimerHandle | None = None

    def handing_over(self) -> None:
        """A response is built and handed to gRPC: the timeout starts. (Not at once: most
        wake-ups build nothing, and a timer each is what they would cost.)"""
        if self._semaphore is not None and self._timeout > 0 and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._semaphore is not None:
            self.release()
            self._on_timeout()

    def release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._semaphore is not None:
            semaphore, self._semaphore = self._semaphore, None
            semaphore.release()


class PushThrottle:
    """At most ``limit`` streams build a response or wait for gRPC to take it (0: no limit);
    the other streams due wait their turn, so the event loop keeps time for other work
    (health checks, requests) however many proxies a push concerns."""

    def __init__(self, limit: int, send_timeout: float) -> None:
        self.limit = limit
        self.send_timeout = send_timeout
        self._semaphore = asyncio.Semaphore(limit) if limit > 0 else None

    async def acquire(self, on_timeout: Callable[[], None] = lambda: None) -> tuple[PushSlot, float]:
        """A slot, and the seconds waited for it."""
        if self._semaphore is None:
            return PushSlot(None), 0.0
        waited = 0.0
        if self._semaphore.locked():
            started = time.monotonic()
            await self._semaphore.acquire()
            waited = time.monotonic() - started
        else:
            await self._semaphore.acquire()  # free: no suspension
        return PushSlot(self._semaphore, self.send_timeout, on_timeout), waited

    @property
    def in_use(self) -> int:
        if self._semaphore is None:
            return 0
        return self.limit - self._semaphore._value  # for status output


class StreamOwners:
    """Open streams per owner (a proven identity, or the peer address of a client without
    one), refused beyond the caps."""

    def __init__(self, limits: XdsLimits) -> None:
        self._limits = limits
        self._counts: dict[Hashable, int] = {}

    def add(self, identity: Hashable | None, peer: str) -> Hashable:
        """Count one more stream for its owner; returns the key to give to ``remove``."""
        if identity is not None:
            key: Hashable = ("identity", identity)
            cap, what = self._limits.max_streams_per_identity, f"identity {identity}"
            reason = "streams_per_identity"
        else:
            key = ("peer", peer_address(peer))
            cap, what = self._limits.max_streams_per_peer, f"peer {peer_address(peer)}"
            reason = "streams_per_peer"
        count = self._counts.get(key, 0)
        if over(count + 1, cap):
            raise ResourceExhausted(
                reason, f"{what} already has {count} xDS streams open, the most allowed"
            )
        self._counts[key] = count + 1
        return key

    def remove(self, key: Hashable) -> None:
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)

    def __len__(self) -> int:
        return len(self._counts)
