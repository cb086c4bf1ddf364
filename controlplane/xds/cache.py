"""The snapshot cache: prepared resources per proxy group (and per proven identity).

The translator calls `set_snapshot` / `set_resources` / `remove_group`; secrets that belong to
one workload identity go in with `set_identity_resources`, so only a stream whose identity was
proven sees them. Streams register as watchers and are told (without awaiting anything) when
what they see changed; they then read the latest state themselves, so intermediate versions are
coalesced and a slow stream never holds anyone up.

Methods may be called from the event loop or from another thread: state is swapped under a
short lock that is never held across an await, and watchers are notified thread-safely: from
another thread, those of one event loop with one callback on it (not one wake-up of the loop
per stream), and only those of the group or identity concerned (kept by both).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Collection, Hashable, Iterable, Mapping
from typing import Protocol

from controlplane.xds.resources import ResourceInput, TypeResources, merge_layers

log = logging.getLogger(__name__)

Identity = Hashable  # what the authenticate hook returns; a SPIFFE ID string is typical


class Watcher(Protocol):
    # Read once, at watch(): a watcher keeps its group and identity while it watches.
    group: str | None
    identity: Identity | None
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop notify() is called on (None: any thread will do)."""

    def notify(self) -> None:
        """Something this watcher sees changed; must not block."""


class SnapshotCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, TypeResources]] = {}
        self._identities: dict[Identity, dict[str, TypeResources]] = {}
        self._by_group: dict[str | None, set[Watcher]] = {}
        self._by_identity: dict[Identity, set[Watcher]] = {}
        self._views: dict[
            tuple[str, Identity | None, str], tuple[object, object, TypeResources]
        ] = {}

    # --- what the translator / runtime calls -------------------------------------------------

    def set_snapshot(self, group: str, resources: Mapping[str, Iterable[ResourceInput]]) -> None:
        """Replace every type of a group at once; a type not given becomes empty."""
        with self._lock:
            previous = self._groups.get(group, {})
            self._groups[group] = {
                type_url: TypeResources.build(type_url, items, previous.get(type_url))
                for type_url, items in resources.items()
            }
        self._notify(self._by_group, group)

    def set_resources(self, group: str, type_url: str, resources: Iterable[ResourceInput]) -> None:
        """Replace one type of an existing group (e.g. endpoints alone)."""
        with self._lock:
            current = self._groups.get(group)
            if current is None:
                raise KeyError(f"group {group!r} has no snapshot; call set_snapshot first")
            updated = dict(current)
            updated[type_url] = TypeResources.build(type_url, resources, current.get(type_url))
            self._groups[group] = updated
        self._notify(self._by_group, group)

    def update_resources(self, group: str, type_url: str, resources: Iterable[ResourceInput]) -> bool:
        """Add or replace resources of one type of an existing group by name (e.g. the
        endpoints of the services that changed); the others stay as they are. Whether any
        of them differed (False: the group's streams have nothing new)."""
        with self._lock:
            current = self._groups.get(group)
            if current is None:
                raise KeyError(f"group {group!r} has no snapshot; call set_snapshot first")
            previous = current.get(type_url) or TypeResources(type_url)
            updated = previous.updated(resources)
            if updated is previous:
                return False
            self._groups[group] = {**current, type_url: updated}
        self._notify(self._by_group, group)
        return True

    def remove_group(self, group: str) -> None:
        """Forget a group. Streams still on it keep their config and wait for a new snapshot."""
        with self._lock:
            self._groups.pop(group, None)
            self._views = {k: v for k, v in self._views.items() if k[0] != group}

    def set_identity_resources(
        self, identity: Identity, type_url: str, resources: Iterable[ResourceInput]
    ) -> None:
        """Resources only streams authenticated as `identity` see (e.g. its SDS secrets).
        They overlay the group's resources of the same name."""
        with self._lock:
            current = self._identities.get(identity, {})
            updated = dict(current)
            updated[type_url] = TypeResources.build(type_url, resources, current.get(type_url))
            self._identities[identity] = updated
        self._notify(self._by_identity, identity)

    def remove_identity(self, identity: Identity) -> None:
        with self._lock:
            self._identities.pop(identity, None)
            self._views = {k: v for k, v in self._views.items() if k[1] != identity}
        self._notify(self._by_identity, identity)

    # --- what the server and operators read --------------------------------------------------

    def has_group(self, group: str) -> bool:
        return group in self._groups

    def groups(self) -> list[str]:
        return sorted(self._groups)

    def group_versions(self, group: str) -> dict[str, str]:
        """Type URL -> content version of that type's set in the group (empty if unknown)."""
        snapshot = self._groups.get(group, {})
        return {type_url: res.version for type_url, res in sorted(snapshot.items())}

    def resources(self, group: str, type_url: str) -> TypeResources:
        return self._groups.get(group, {}).get(type_url) or TypeResources(type_url)

    def view(self, group: str, identity: Identity | None, type_url: str) -> TypeResources | None:
        """What a stream of this group and identity sees of one type; None while the group has
        no snapshot yet."""
        snapshot = self._groups.get(group)
        if snapshot is None:
            return None
        group_layer = snapshot.get(type_url)
        identity_layer = (
            self._identities.get(identity, {}).get(type_url) if identity is not None else None
        )
        if identity_layer is None:
            return group_layer or TypeResources(type_url)
        key = (group, identity, type_url)
        memo = self._views.get(key)
        if memo is not None and memo[0] is group_layer and memo[1] is identity_layer:
            return memo[2]
        merged = merge_layers((group_layer, identity_layer), type_url)
        self._views[key] = (group_layer, identity_layer, merged)
        return merged

    # --- watchers ----------------------------------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        with self._lock:
            self._by_group.setdefault(watcher.group, set()).add(watcher)
            if watcher.identity is not None:
                self._by_identity.setdefault(watcher.identity, set()).add(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            _discard(self._by_group, watcher.group, watcher)
            if watcher.identity is not None:
                _discard(self._by_identity, watcher.identity, watcher)

    def watcher_count(self, group: str) -> int:
        return len(self._by_group.get(group, ()))

    def _notify(self, index: dict, key: Hashable) -> None:
        with self._lock:
            targets = list(index.get(key, ()))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        elsewhere: dict[asyncio.AbstractEventLoop, list[Watcher]] = {}
        for watcher in targets:
            loop = watcher.loop
            if loop is None or loop is running:
                watcher.notify()
            else:
                elsewhere.setdefault(loop, []).append(watcher)
        for loop, watchers in elsewhere.items():
            try:
                loop.call_soon_threadsafe(_notify_all, watchers)
            except RuntimeError:  # that loop is closed: its watchers are gone
                pass


def _notify_all(watchers: Collection[Watcher]) -> None:
    for watcher in watchers:
        watcher.notify()


def _discard(index: dict, key: Hashable, watcher: Watcher) -> None:
    watchers = index.get(key)
    if watchers is not None:
        watchers.discard(watcher)
        if not watchers:
            del index[key]
