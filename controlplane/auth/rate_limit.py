"""Token buckets per key (a proven identity, a peer address), in a bounded map.

No gRPC and no clock of its own: the caller injects ``clock`` (monotonic seconds), so tests
drive time by hand.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class KeyedRateLimiter:
    """``rate`` requests per second per key, bursts of up to ``burst``.

    At most ``max_keys`` buckets are held: past that the least recently used one is dropped.
    A dropped key starts again with a full bucket, so eviction never refuses anyone; it can
    only let a key that was idle the longest through sooner, and that bucket has usually
    refilled anyway (``evictions_of_unfilled`` counts the times it had not).
    """

    rate: float
    burst: float
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    evictions_of_unfilled: int = 0
    _buckets: OrderedDict[Hashable, _Bucket] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_keys < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_keys >= 1")

    def allow(self, key: Hashable) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            self._buckets.move_to_end(key)
            self._refill(bucket, now)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def __len__(self) -> int:
        return len(self._buckets)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.updated)  # a clock that steps back refills nothing
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.updated = now

    def _make_room(self, now: float) -> None:
        while len(self._buckets) >= self.max_keys:
            _, oldest = self._buckets.popitem(last=False)
            self._refill(oldest, now)
            if oldest.tokens < self.burst:
                self.evictions_of_unfilled += 1


def peer_key(peer: str) -> str:
    """The address part of a gRPC peer (``ipv4:10.0.0.1:4242``, ``ipv6:[fe80::1]:4242``).

    The port is dropped (each new connection has its own), and an IPv6 address counts by its
    /64, which one host usually holds whole. Anything else is kept as given."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0].strip("[]") if rest.startswith("[") else rest
        try:
            address = ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return peer
        if address.ipv4_mapped is not None:  # a dual-stack listener's IPv4 client
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return peer
