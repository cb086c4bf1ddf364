"""What equal streams hold once: their subscriptions.

The proxies of a group ask for the same names (an Envoy's EDS subscription is every EDS
cluster its CDS response named: ~1,000 names on a 1,000-service mesh). A stream holds the
pool's frozenset of those names, shared by every stream that asked for the same, and the
request's subscription bytes, against which a repeated request (a SotW ACK) is compared
with one ``memcmp``: no Python string is made of its names.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

# The fields of a SotW DiscoveryRequest that do not say what is subscribed.
_NOT_SUBSCRIPTION = ("version_info", "node", "response_nonce", "error_detail")


def subscription_key(request: Message, raw: bytes | None = None) -> bytes:
    """The request's bytes without its version, nonce, node and error: equal keys, equal
    subscriptions (the names in the same order). From ``raw``, the bytes ``request`` was
    parsed from, when they are laid out as serializers write them (version first, nonce
    last, no node or error: an Envoy's ACK): a slice of them, where serializing the request
    again walks every name. Otherwise clears those fields of ``request``: call it once they
    were read. For an Envoy both ways give equal keys for equal subscriptions. Fields laid
    out otherwise give a key that matches nothing (the full path follows), or, crafted so
    that a name's last bytes look like the nonce, a slice cut inside that name: never a
    whole encoding, so never the key of a well-formed request (of another stream)."""
    if raw is not None and not request.HasField("node") and not request.HasField("error_detail"):
        prefix, suffix = _around(request.version_info, request.response_nonce)
        end = len(raw) - len(suffix)
        if end >= len(prefix) and raw.startswith(prefix) and raw.endswith(suffix):
            return raw[len(prefix):end]
    for name in _NOT_SUBSCRIPTION:
        request.ClearField(name)
    return request.SerializeToString()


def repeats_subscription(raw: bytes, key: bytes, version: str, nonce: str) -> bool:
    """Whether ``raw`` is a SotW request of this version and nonce whose subscription bytes
    are ``key``, laid out as serializers write it (no node, no error): an ACK that changes
    nothing, told without parsing it. Its parse would give that version, that nonce, no
    error, and the subscription ``key`` stands for (the type URL is part of it)."""
    prefix, suffix = _around(version, nonce)
    end = len(raw) - len(suffix)
    return (
        end - len(prefix) == len(key)
        and raw.startswith(prefix)
        and raw.endswith(suffix)
        and raw[len(prefix):end] == key
    )


def _around(version: str, nonce: str) -> tuple[bytes, bytes]:
    """The bytes of a SotW request's version (its first field) and nonce (its last but the
    error) as serializers write them."""
    return (
        discovery_pb2.DiscoveryRequest(version_info=version).SerializeToString(),
        discovery_pb2.DiscoveryRequest(response_nonce=nonce).SerializeToString(),
    )


class SubscriptionPool:
    """Bounded, by entries and by size (what clients send is bounded): the least recently
    asked-for subscription goes first (streams that hold it keep it; a stream asking for it
    later starts a new shared copy)."""

    def __init__(self, limit: int = 128, max_names: int = 128 * 1024) -> None:
        self._limit = limit
        self._max_names = max_names  # names and key bytes / 64, over both maps
        self._held = 0
        self._by_key: dict[bytes, tuple[bytes, frozenset[str]]] = {}
        self._sets: dict[frozenset[str], frozenset[str]] = {}

    def known(self, key: bytes) -> tuple[bytes, frozenset[str]] | None:
        """The shared key and names of a subscription asked for before, if still pooled."""
        found = self._by_key.pop(key, None)
        if found is not None:
            self._by_key[key] = found  # the most recently used goes last
        return found

    def add(self, key: bytes, names: Iterable[str]) -> tuple[bytes, frozenset[str]]:
        """Pool a subscription (its names already checked against the limits)."""
        found = self._by_key.get(key)
        if found is None:
            found = self._by_key[key] = (key, self.names(names))
            self._held += len(key) // 64
            self._evict(self._by_key, lambda k, _: len(k) // 64)
        return found

    def names(self, names: Iterable[str]) -> frozenset[str]:
        """The shared frozenset equal to ``names`` (their strings interned)."""
        wanted = names if isinstance(names, frozenset) else frozenset(names)
        found = self._sets.pop(wanted, None)
        if found is None:
            found = frozenset(map(sys.intern, wanted))
            self._held += len(found)
        self._sets[found] = found  # the most recently used goes last
        self._evict(self._sets, lambda k, _: len(k))
        return found

    def _evict(self, pooled: dict, size) -> None:
        while pooled and (len(pooled) > self._limit or self._held > self._max_names):
            oldest = next(iter(pooled))
            self._held -= size(oldest, pooled.pop(oldest))
