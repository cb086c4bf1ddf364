"""Translation units kept from one snapshot to the next, keyed by every input they read.

The push context's ``memo`` shares outputs among the proxies of one snapshot and starts
empty with each new one. A routing change (one VirtualService's weights, a new Service)
leaves almost every unit's inputs as they were, so the units here (an outbound cluster, a
ClusterLoadAssignment, a virtual host's routes) outlive the snapshot: a full translation
after a change rebuilds only the units whose inputs changed and reuses the very same
messages for the others (the xDS cache then finds their bytes unchanged).

A key names every input a unit reads: small values by value (a service, its endpoints),
resources by identity (``Ident``: the store keeps the same object while a resource is
unchanged), so a changed input can only miss, never return a stale unit. The cache belongs
to one context lineage, hence to one mesh config (keys leave it out).

A scope's whole output (every outbound cluster of a sidecar scope, say) is also kept, one per
slot, while the inputs of all its units are the same (``latest``): a change elsewhere (a
VirtualService's weights) then costs nothing for it, not even a lookup per unit. Where the
caller can tell which units a change touched (a route configuration's virtual hosts, by their
VirtualServices; a scope's clusters and assignments, by the hosts the service index says
changed), it keeps its last result in a slot (``hold``/``held``) and looks those alone up again.

Bounded: two generations of units. Every AUDIT_EVERY-th push is an audit: it takes no
``latest`` shortcut, so every unit still in use is looked up, then ``end_push`` sweeps: what
the audit did not use is dropped, and ``latest`` starts over. Between audits only changed
units are added; past a limit (twice the units in use at the last audit) the next push is an
audit, and past twice that (endpoint pushes alone, which never audit) the older generation
is dropped on the spot.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")
MIN_LIMIT = 50_000  # units before the next push audits, whatever the last audit found
AUDIT_EVERY = 8  # pushes: one in so many looks every unit up, then drops those not used
_MISSING: Any = object()


class Ident:
    """An object as a key part, compared and hashed by identity (for resources that are
    large to hash; the key keeps the object alive, so its id is never reused meanwhile)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ident) and other.obj is self.obj

    def __repr__(self) -> str:
        return f"Ident({type(self.obj).__name__}@{id(self.obj):x})"


def ident(obj: object | None) -> Ident | None:
    """``Ident(obj)``, None for None."""
    return None if obj is None else Ident(obj)


class UnitCache:
    """Units by key, over two generations (see the module docstring). Values are treated as
    immutable by every caller: they are shared among proxies and snapshots."""

    def __init__(self, min_limit: int = MIN_LIMIT, audit_every: int = AUDIT_EVERY) -> None:
        self._current: dict[Hashable, object] = {}
        self._previous: dict[Hashable, object] = {}
        self._latest: dict[Hashable, tuple[object, object]] = {}
        self._min_limit = min_limit
        self._limit = min_limit
        self._audit_every = audit_every
        self._pushes = 0
        self.audit = True  # the first push looks every unit up
        self._audit_due = False
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The unit of ``key`` (every input it reads), built if there is none."""
        value = self._current.get(key, _MISSING)
        if value is not _MISSING:
            self.hits += 1
            return cast(T, value)
        value = self._previous.pop(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
            value = build()
        else:
            self.hits += 1
        self._current[key] = value
        if len(self._current) > self._limit:
            self._audit_due = True
            if len(self._current) > 2 * self._limit and not self.audit:  # an audit adds what is in use
                self._previous, self._current = self._current, {}
        return cast(T, value)

    def latest(self, slot: Hashable, inputs: object, build: Callable[[], T]) -> T:
        """The value last built for ``slot`` if ``inputs`` equal (by ``==``: never hashed)
        those it was built from; else (and on an audit) built now and kept for ``slot``."""
        held = self._latest.get(slot)
        if held is not None and not self.audit and held[0] == inputs:
            return cast(T, held[1])
        value = build()
        self._latest[slot] = (inputs, value)
        return value

    def held(self, slot: Hashable) -> object | None:
        """What ``hold`` last kept in ``slot``, whatever it was made from (the caller compares);
        None on an audit, which takes no shortcut."""
        found = self._latest.get(slot)
        return None if found is None or self.audit else found[1]

    def hold(self, slot: Hashable, value: object) -> None:
        """Keep ``value`` in ``slot`` (dropped with the slots of ``latest``)."""
        self._latest[slot] = (None, value)

    def end_push(self) -> None:
        """After a push that translated every group: an audit sweeps (units it did not use
        are dropped; so are the slots of ``latest``), and every AUDIT_EVERY-th push audits."""
        if self.audit:
            self._previous, self._current = self._current, {}
            self._limit = max(self._min_limit, 2 * len(self._previous))
        self._pushes += 1
        self.audit = self._audit_due or self._pushes % self._audit_every == 0
        if self.audit:  # the audit starts a generation of its own: it keeps what it looks up
            self._audit_due = False
            self._previous.update(self._current)
            self._current = {}
            self._latest = {}

    def __len__(self) -> int:
        return len(self._current) + len(self._previous) + len(self._latest)
