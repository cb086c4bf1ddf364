"""The first translation of new groups: the streams of several groups that join at once are
served by one job, which translates each group asked for once and no other group."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from controlplane.server.push import Pusher
from controlplane.sources.memory import MemorySource
from controlplane.store import Store
from controlplane.translate import CLUSTER_TYPE, MeshConfig
from controlplane.xds import SnapshotCache
from tests.harness.xds_double import node

SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "reviews", "namespace": "default"},
    "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]},
}


def sidecar(namespace: str) -> str:
    return f"sidecar~10.0.0.9~app-0.{namespace}~{namespace}.svc.cluster.local"


async def test_groups_that_join_at_once_are_translated_in_one_job(monkeypatch) -> None:
    store, cache = Store(), SnapshotCache()
    MemorySource(store).apply(SERVICE)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    jobs: list[list[str]] = []  # the groups of each translation job, by namespace
    full = pusher._full

    def recording(groups, ctx):
        jobs.append([proxy.namespace for proxy in groups.values()])
        return full(groups, ctx)

    monkeypatch.setattr(pusher, "_full", recording)
    first = pusher.group_of(node(sidecar("one")), None)
    running = asyncio.create_task(pusher.translate_group(first))
    await asyncio.sleep(0)  # its job runs (in a thread)

    # Meanwhile two groups join (and a second stream of one of them): the next job takes
    # both, in the order asked; the group translated before is not translated again.
    second = pusher.group_of(node(sidecar("two")), None)
    third = pusher.group_of(node(sidecar("three")), None)
    await asyncio.gather(
        running,
        pusher.translate_group(second), pusher.translate_group(third), pusher.translate_group(second),
    )
    assert jobs == [["one"], ["two", "three"]]
    assert cache.has_group(second) and cache.has_group(third)
    assert "outbound|9080||reviews.default.svc.cluster.local" in cache.resources(third, CLUSTER_TYPE).by_name

    await pusher.translate_group(third)  # a late stream of a translated group: nothing to do
    assert len(jobs) == 2


async def test_groups_asked_for_while_a_job_translates_are_taken_by_that_job(monkeypatch) -> None:
    """A group whose stream joins while a first translation runs is translated by the same
    job, right after, in its thread: not after the event loop (busy sending the first
    group's config) gets round to starting another."""
    store, cache = Store(), SnapshotCache()
    MemorySource(store).apply(SERVICE)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    loop = asyncio.get_running_loop()
    jobs: list[list[str]] = []
    threads: list[object] = []  # the jobs handed to a worker thread
    full, to_thread = pusher._full, asyncio.to_thread
    joined: list[concurrent.futures.Future] = []

    def recording(groups, ctx):
        jobs.append([proxy.namespace for proxy in groups.values()])
        if len(jobs) == 1:  # a stream of another group joins meanwhile
            late = pusher.group_of(node(sidecar("late")), None)
            joined.append(asyncio.run_coroutine_threadsafe(pusher.translate_group(late), loop))
            deadline = time.monotonic() + 5
            while late not in pusher._first_needed and time.monotonic() < deadline:
                time.sleep(0.001)
        return full(groups, ctx)

    def counting(work, *args):
        threads.append(work)
        return to_thread(work, *args)

    monkeypatch.setattr(pusher, "_full", recording)
    monkeypatch.setattr(asyncio, "to_thread", counting)
    await pusher.translate_group(pusher.group_of(node(sidecar("one")), None))
    await asyncio.gather(*map(asyncio.wrap_future, joined))
    assert jobs == [["one"], ["late"]]
    assert len(threads) == 1, "one job"
    assert all(cache.has_group(g) for g in pusher.groups())


async def test_a_group_left_before_its_job_is_not_translated() -> None:
    store, cache = Store(), SnapshotCache()
    MemorySource(store).apply(SERVICE)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    gone = pusher.group_of(node(sidecar("gone")), None)
    staying = pusher.group_of(node(sidecar("staying")), None)
    job = asyncio.gather(pusher.translate_group(gone), pusher.translate_group(staying))
    pusher.forget(gone)  # its last stream closed before the job started
    await job
    assert cache.has_group(staying) and not cache.has_group(gone)


async def _first_translation_misses(warm: bool) -> tuple[int, Pusher, SnapshotCache, Store]:
    """Units a group's first translation builds, on a server warmed or not (push_units' mesh)."""
    from tests.runtime.test_push_units import INITIAL, PROXIES

    store, cache = Store(), SnapshotCache()
    MemorySource(store).apply(*INITIAL)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    await pusher.push(None)  # the server's initial push: no group yet
    units = pusher.context().units
    if warm:
        await pusher.warm(has_certificate=False)  # as the plaintext proxy below
        assert units.misses > 0
    before = units.misses
    await pusher.translate_group(pusher.group_of(*PROXIES[2]))
    return units.misses - before, pusher, cache, store


async def test_warming_builds_the_shared_units_before_the_first_proxy_comes() -> None:
    from tests.runtime.test_push_units import PROXIES, assert_same_as_fresh

    cold, _, _, _ = await _first_translation_misses(warm=False)
    warmed, pusher, cache, store = await _first_translation_misses(warm=True)
    assert warmed * 3 < cold, f"the first translation found the shared units built ({warmed} of {cold})"
    assert_same_as_fresh(pusher, cache, store.snapshot, "a first translation after warming")

    # With a group on the server, its pushes keep the units in use: warming does nothing.
    units = pusher.context().units
    misses = units.misses
    await pusher.warm()
    assert units.misses == misses
    await pusher.translate_group(pusher.group_of(*PROXIES[0]))
    assert_same_as_fresh(pusher, cache, store.snapshot, "a group with a certificate")
