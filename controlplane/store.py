"""The current input snapshot: immutable, keyed by ResourceKey, and who changed what.

Sources (folder, Kubernetes, memory) submit resources tagged with their source id;
each source only ever replaces or deletes its own resources, so a folder edit never
clobbers what the Kubernetes source supplied. When two sources supply the same key,
the source that registered first wins; the other's copy shows through once the
winner deletes its own.

A ``Snapshot`` is never mutated: every change builds a new one. Its per-kind maps are
persistent (``immutables.Map``, a HAMT): a changed kind's map shares all but a few nodes
with the one before, so a change costs the same whatever the number of resources.
Subscribers get a ``ChangeSet`` with the old and new objects; a submission that changes
no content (equal objects) produces no snapshot and no notification. Submissions may
come from any thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar, overload

import immutables

from controlplane.model.base import Resource, ResourceKey

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)

_EMPTY: immutables.Map[ResourceKey, Any] = immutables.Map()
LINEAGE = 16  # steps a snapshot remembers (Snapshot.changed_since)


class Snapshot(Mapping[ResourceKey, Resource]):
    """An immutable view of every input resource, indexed by kind.

    Behaves as a read-only ``Mapping[ResourceKey, Resource]``; the typed accessors
    return lists sorted by key so that everything downstream is deterministic.
    """

    __slots__ = ("_by_kind", "_len", "_lineage", "_sorted_cache", "version")

    def __init__(
        self,
        by_kind: Mapping[str, Mapping[ResourceKey, Resource]] | None = None,
        version: int = 0,
        lineage: tuple[tuple[int, frozenset[ResourceKey]], ...] = (),
    ) -> None:
        # Inner maps are persistent: with_changes shares them, and their unchanged parts.
        self._by_kind: dict[str, immutables.Map[ResourceKey, Resource]] = {
            kind: items if isinstance(items, immutables.Map) else immutables.Map(dict(items))
            for kind, items in (by_kind or {}).items()
            if items
        }
        self._len = sum(len(items) for items in self._by_kind.values())
        self.version = version
        # The last few steps that led here: (version before, keys changed), oldest first.
        self._lineage = lineage
        self._sorted_cache: dict[str, tuple[Resource, ...]] = {}

    # Mapping protocol
    def __getitem__(self, key: ResourceKey) -> Resource:
        return self._by_kind.get(key.kind, _EMPTY)[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, ResourceKey) and key in self._by_kind.get(key.kind, _EMPTY)

    def __iter__(self) -> Iterator[ResourceKey]:
        for kind in sorted(self._by_kind):
            yield from sorted(self._by_kind[kind])

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={len(v)}" for k, v in sorted(self._by_kind.items()))
        return f"Snapshot(version={self.version}, {counts})"

    # Typed accessors
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_kind))

    @overload
    def of_kind(self, kind: type[R], namespace: str | None = None) -> list[R]: ...
    @overload
    def of_kind(self, kind: str, namespace: str | None = None) -> list[Resource]: ...

    def of_kind(self, kind: Any, namespace: str | None = None) -> list[Any]:
        """Resources of one kind (a model class or its KIND string), sorted by key,
        optionally only those in ``namespace``."""
        name = kind if isinstance(kind, str) else kind.KIND
        items = self._sorted(name)
        if namespace is None:
            return list(items)
        return [r for r in items if r.meta.namespace == namespace]

    def in_namespace(self, namespace: str) -> list[Resource]:
        """Every resource in ``namespace``, sorted by key."""
        return [
            r for kind in self.kinds() for r in self._sorted(kind) if r.meta.namespace == namespace
        ]

    @overload
    def get_typed(self, kind: type[R], namespace: str, name: str) -> R | None: ...
    @overload
    def get_typed(self, kind: str, namespace: str, name: str) -> Resource | None: ...

    def get_typed(self, kind: Any, namespace: str, name: str) -> Any:
        kind_name = kind if isinstance(kind, str) else kind.KIND
        return self.get(ResourceKey(kind_name, namespace, name))

    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({key.namespace for items in self._by_kind.values() for key in items}))

    def kinds_changed_since(self, older: Snapshot) -> frozenset[str]:
        """Kinds whose resources differ from ``older``'s. A kind untouched by every change in
        between shares its inner map with ``older`` (see with_changes), so this is cheap."""
        kinds = self._by_kind.keys() | older._by_kind.keys()
        return frozenset(k for k in kinds if self._by_kind.get(k) is not older._by_kind.get(k))

    def changed_since(
        self, older: Snapshot, kinds: Iterable[str]
    ) -> Iterator[tuple[Resource | None, Resource | None]]:
        """(old, new) for each resource of ``kinds`` that differs from ``older`` (None: absent),
        computed as it is read: from the keys the steps since ``older`` changed when it is a
        recent ancestor (of the same store: versions tell), at a cost that does not grow with
        the snapshot; else by comparing the maps (snapshots share unchanged resources, so
        identity tells)."""
        wanted = frozenset(kinds)
        steps = [v for v, _ in self._lineage]
        if older.version in steps:
            keys: set[ResourceKey] = set()
            for _, changed in self._lineage[steps.index(older.version):]:
                keys.update(k for k in changed if k.kind in wanted)
            for key in sorted(keys):
                before, after = older.get(key), self.get(key)
                if before is not after:
                    yield before, after
            return
        for kind in sorted(wanted):
            new, old = self._by_kind.get(kind, _EMPTY), older._by_kind.get(kind, _EMPTY)
            if new is old:
                continue
            yield from ((old.get(key), r) for key, r in new.items() if old.get(key) is not r)
            yield from ((old[key], None) for key in old if key not in new)

    def _sorted(self, kind: str) -> tuple[Resource, ...]:
        cached = self._sorted_cache.get(kind)
        if cached is None:
            items = self._by_kind.get(kind, _EMPTY)
            cached = tuple(items[k] for k in sorted(items))
            self._sorted_cache[kind] = cached  # benign race: same value either way
        return cached

    def with_changes(
        self, changes: Mapping[ResourceKey, Resource | None], version: int
    ) -> Snapshot:
        """A new snapshot with ``changes`` applied (None deletes), at the cost of the change:
        touched kinds get new persistent maps, the others (and their sorted lists) are shared."""
        by_kind: dict[str, Mapping[ResourceKey, Resource]] = dict(self._by_kind)
        touched: dict[str, immutables.MapMutation[ResourceKey, Resource]] = {}
        for key, new in changes.items():
            items = touched.get(key.kind)
            if items is None:
                items = touched[key.kind] = self._by_kind.get(key.kind, _EMPTY).mutate()
            if new is None:
                items.pop(key, None)
            else:
                items[key] = new
        for kind, items in touched.items():
            by_kind[kind] = items.finish()
        lineage = (*self._lineage[-(LINEAGE - 1):], (self.version, frozenset(changes)))
        snapshot = Snapshot(by_kind, version, lineage)
        still_sorted = dict(self._sorted_cache)  # one C-level copy: other threads may fill it
        for kind in touched:
            still_sorted.pop(kind, None)
        snapshot._sorted_cache = still_sorted
        return snapshot


@dataclass(frozen=True, slots=True)
class Change:
    """One key's transition; ``old`` is None when added, ``new`` is None when removed."""

    key: ResourceKey
    old: Resource | None
    new: Resource | None

    @property
    def action(self) -> str:
        if self.old is None:
            return "added"
        return "removed" if self.new is None else "updated"


@dataclass(frozen=True)
class ChangeSet:
    """What one submission (or several merged) changed, and the snapshots around it."""

    changes: Mapping[ResourceKey, Change]
    previous: Snapshot
    snapshot: Snapshot
    source: str = ""

    @property
    def added(self) -> tuple[ResourceKey, ...]:
        return tuple(sorted(k for k, c in self.changes.items() if c.old is None))

    @property
    def updated(self) -> tuple[ResourceKey, ...]:
        return tuple(
            sorted(k for k, c in self.changes.items() if c.old is not None and c.new is not None)
        )

    @property
    def removed(self) -> tuple[ResourceKey, ...]:
        return tuple(sorted(k for k, c in self.changes.items() if c.new is None))

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(k.kind for k in self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def merge(self, later: ChangeSet) -> ChangeSet:
        """This change set followed by ``later``, as one (for debouncing): an object added
        then removed disappears, changed back to what it was disappears too."""
        merged = dict(self.changes)
        for key, change in later.changes.items():
            first = merged.get(key)
            old = first.old if first is not None else change.old
            if (
                old is None
                and change.new is None
                or old is not None
                and change.new is not None
                and _same(old, change.new)
            ):
                merged.pop(key, None)
            else:
                merged[key] = Change(key, old, change.new)
        sources = self.source if self.source == later.source else ""
        return ChangeSet(MappingProxyType(merged), self.previous, later.snapshot, sources)


def _same(a: Resource, b: Resource) -> bool:
    return a is b or a == b


Subscriber = Callable[[ChangeSet], None]


@dataclass
class _SourceState:
    order: int
    items: dict[ResourceKey, Resource] = field(default_factory=dict)


class Store:
    """Holds the current Snapshot; sources submit, subscribers are told what changed."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._snapshot = Snapshot()
        self._sources: dict[str, _SourceState] = {}
        self._subscribers: list[Subscriber] = []

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot  # an attribute read: atomic, no lock needed

    # --- subscribers -------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(changeset)`` after every change, in order, on the submitting
        thread (keep it short; the runtime debounces). Returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def subscribe_queue(
        self, loop: asyncio.AbstractEventLoop | None = None
    ) -> tuple[asyncio.Queue[ChangeSet], Callable[[], None]]:
        """An asyncio queue on ``loop`` (default: the running loop) that receives every
        ChangeSet, safe to feed from source threads. Returns (queue, unsubscribe)."""
        target = loop or asyncio.get_running_loop()
        queue: asyncio.Queue[ChangeSet] = asyncio.Queue()

        def forward(changeset: ChangeSet) -> None:
            if not target.is_closed():
                target.call_soon_threadsafe(queue.put_nowait, changeset)

        return queue, self.subscribe(forward)

    # --- submissions -------------------------------------------------------------
    def apply(
        self,
        source: str,
        upserts: Iterable[Resource] = (),
        deletes: Iterable[ResourceKey] = (),
    ) -> ChangeSet:
        """Add or replace ``upserts`` and delete ``deletes`` for one source."""
        with self._lock:
            state = self._source(source)
            touched: set[ResourceKey] = set()
            for key in deletes:
                if state.items.pop(key, None) is not None:
                    touched.add(key)
            for resource in upserts:
                key = resource.key
                old = state.items.get(key)
                if old is None or not _same(old, resource):
                    state.items[key] = resource
                    touched.add(key)
            return self._commit(source, touched)

    def replace(self, source: str, resources: Iterable[Resource]) -> ChangeSet:
        """Make ``resources`` the complete set this source supplies (its initial load or a
        relist): what it supplied before and not now is deleted."""
        with self._lock:
            state = self._source(source)
            new_items: dict[ResourceKey, Resource] = {}
            for resource in resources:
                new_items[resource.key] = resource
            touched = {k for k in state.items if k not in new_items}
            for key, resource in new_items.items():
                old = state.items.get(key)
                if old is None or not _same(old, resource):
                    touched.add(key)
                else:
                    new_items[key] = old  # keep the identical object already published
            state.items = new_items
            return self._commit(source, touched)

    def remove_source(self, source: str) -> ChangeSet:
        """Forget everything ``source`` supplied."""
        return self.replace(source, ())

    def source_keys(self, source: str) -> frozenset[ResourceKey]:
        with self._lock:
            state = self._sources.get(source)
            return frozenset(state.items) if state else frozenset()

    def _source(self, source: str) -> _SourceState:
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _SourceState(order=len(self._sources))
        return state

    def _winner(self, key: ResourceKey) -> Resource | None:
        for state in self._sources.values():  # dicts keep registration order
            found = state.items.get(key)
            if found is not None:
                return found
        return None

    def _commit(self, source: str, touched: set[ResourceKey]) -> ChangeSet:
        current = self._snapshot
        changes: dict[ResourceKey, Change] = {}
        updates: dict[ResourceKey, Resource | None] = {}
        for key in sorted(touched):
            old = current.get(key)
            new = self._winner(key)
            if old is None and new is None:
                continue
            if old is not None and new is not None and _same(old, new):
                continue
            changes[key] = Change(key, old, new)
            updates[key] = new
        if not changes:
            return ChangeSet(MappingProxyType({}), current, current, source)
        snapshot = current.with_changes(updates, current.version + 1)
        self._snapshot = snapshot
        changeset = ChangeSet(MappingProxyType(changes), current, snapshot, source)
        for callback in list(self._subscribers):
            try:
                callback(changeset)
            except Exception:  # one broken subscriber must not stop the others
                log.exception("store subscriber %r failed", callback)
        return changeset
