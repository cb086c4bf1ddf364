from __future__ import annotations

import asyncio

from controlplane.server.debounce import Debouncer


def _merge(acc: list[int] | None, item: int) -> list[int]:
    return [*(acc or []), item]


async def _collect(quiet: float, max_delay: float) -> tuple[Debouncer[list[int]], list[list[int]]]:
    flushed: list[list[int]] = []

    async def flush(items: list[int], _waited: float) -> None:
        flushed.append(items)

    deb: Debouncer[list[int]] = Debouncer(flush, _merge, quiet=quiet, max_delay=max_delay)  # type: ignore[arg-type]
    deb.start()
    return deb, flushed


async def _until(cond, limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


async def test_burst_is_merged_into_one_flush() -> None:
    deb, flushed = await _collect(quiet=0.05, max_delay=10)
    try:
        for i in range(5):
            deb.submit(i)
        await _until(lambda: flushed)
        await asyncio.sleep(0.1)
        assert flushed == [[0, 1, 2, 3, 4]]
    finally:
        await deb.stop()


async def test_steady_trickle_still_flushes_at_max_delay() -> None:
    # Changes every 20 ms with a 1 s quiet period would never go quiet; max_delay forces pushes.
    deb, flushed = await _collect(quiet=1.0, max_delay=0.1)
    try:
        for i in range(30):
            deb.submit(i)
            await asyncio.sleep(0.02)
        await _until(lambda: sum(len(f) for f in flushed) == 30)
        assert len(flushed) >= 2
        assert [x for f in flushed for x in f] == list(range(30))
    finally:
        await deb.stop()


async def test_a_failing_flush_does_not_stop_later_ones() -> None:
    calls: list[list[int]] = []

    async def flush(items: list[int], _waited: float) -> None:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("boom")

    deb: Debouncer[list[int]] = Debouncer(flush, _merge, quiet=0.01, max_delay=1)
    deb.start()
    try:
        deb.submit(1)
        await _until(lambda: len(calls) == 1)
        deb.submit(2)
        await _until(lambda: len(calls) == 2)
        assert calls == [[1], [2]]
    finally:
        await deb.stop()


class _FakeTime:
    """A clock that moves only when the test moves it; the debouncer's sleeps end when it
    reaches their end, so what the debouncer decides does not depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            await asyncio.sleep(0)


async def _trickle(urgent: bool) -> list[float]:
    """A change every 10 ms (quiet period 50 ms, max 10 s) for 2 s: how long each waited."""
    time = _FakeTime()
    submitted: dict[int, float] = {}
    waited: list[float] = []

    async def flush(items: list[int], _seconds: float) -> None:
        waited.extend(time.now - submitted[i] for i in items)

    deb: Debouncer[list[int]] = Debouncer(
        flush, _merge, quiet=0.05, max_delay=10.0,  # type: ignore[arg-type]
        urgent=lambda pending: urgent, clock=time.clock, sleep=time.sleep,
    )
    deb.start()
    try:
        for i in range(200):
            time.now = round(i * 0.01, 6)
            submitted[i] = time.now
            deb.submit(i)
            for _ in range(20):  # let the debouncer look at the clock (no real time passes)
                await asyncio.sleep(0)
        return waited
    finally:
        await deb.stop()


async def test_a_steady_stream_of_urgent_changes_waits_the_quiet_period_not_the_maximum() -> None:
    waited = await _trickle(urgent=True)
    assert len(waited) > 150, "changes are pushed while the stream goes on"
    assert max(waited) <= 0.05 + 0.01 + 1e-9, "at most the quiet period (and one step of the clock)"
    # The same stream of changes that are not urgent is held until it is quiet or max_delay.
    assert await _trickle(urgent=False) == []


async def _flush_times(
    changes: list[float],
    *,
    urgent: bool = True,
    settle: object = 0.01,
    leading: bool | None = None,
    changed: object = lambda items: True,
) -> list[tuple[list[int], float]]:
    """Submit change ``i`` at ``changes[i]`` seconds (quiet 50 ms, max 10 s) and run until
    all are flushed: each flush's changes and when it happened. ``changed(items)`` is what
    the flush returns (False: it changed nothing)."""
    time = _FakeTime()
    flushed: list[tuple[list[int], float]] = []

    async def flush(items: list[int], _seconds: float) -> bool:
        flushed.append((items, time.now))
        return changed(items)  # type: ignore[operator,no-any-return]

    deb: Debouncer[list[int]] = Debouncer(
        flush, _merge, quiet=0.05, max_delay=10.0,  # type: ignore[arg-type]
        urgent=lambda pending: urgent, settle=settle, clock=time.clock, sleep=time.sleep,  # type: ignore[arg-type]
        leading=None if leading is None else (lambda pending: leading),
    )
    deb.start()
    try:
        time.now = 1.0
        queue = list(enumerate(changes))
        while queue or sum(len(items) for items, _ in flushed) < len(changes):
            while queue and queue[0][1] <= time.now + 1e-9:
                deb.submit(queue.pop(0)[0])
            for _ in range(5):  # let the debouncer look at the clock (no real time passes)
                await asyncio.sleep(0)
            time.now = round(time.now + 0.001, 6)  # the clock moves 1 ms per look
            assert time.now < 30, "not flushed"
        return flushed
    finally:
        await deb.stop()


def _waits(flushed: list[tuple[list[int], float]], changes: list[float]) -> list[float]:
    """How long each flush waited after the last change it took."""
    return [round(at - changes[items[-1]], 3) for items, at in flushed]


async def test_an_isolated_urgent_change_waits_only_its_settle() -> None:
    """A complete burst (settle 0: a folder's change, an endpoint event leaving no endpoint
    waiting for its Pod) is pushed at once; one whose rest is on its way waits its settle."""
    assert _waits(await _flush_times([1.0], settle=0.0), [1.0]) == [0.0]
    assert _waits(await _flush_times([1.0], settle=0.01), [1.0]) == [0.01]
    # Changes that are not urgent (and not allowed the leading edge) wait the quiet period.
    assert _waits(await _flush_times([1.0], urgent=False, settle=0.0), [1.0]) == [0.05]


async def test_an_incomplete_burst_waits_for_the_rest_of_its_change() -> None:
    """A slice naming a Pod not here yet (change 0) waits; the Pod (change 1) completes the
    burst, which then goes at once: one push for the change."""
    flushed = await _flush_times([1.0, 1.003], settle=lambda pending: 0.01 if pending == [0] else 0.0)
    assert flushed == [([0, 1], 1.003)]


async def test_the_rest_of_a_change_follows_its_leading_edge_then_the_quiet_period() -> None:
    """What comes close behind a leading-edge push makes one trailing push on the same terms;
    after that, changes within the quiet period are coalesced as Istio's debounce does."""
    changes = [1.0, 1.002, 1.02, 1.03, 1.035]
    flushed = await _flush_times(changes, settle=0.0)
    assert flushed == [([0], 1.0), ([1], 1.002), ([2, 3, 4], 1.07)]  # quiet period from the first
    # With a settle, the trailing push gathers what comes within it.
    flushed = await _flush_times([1.0, 1.02, 1.025, 1.028], settle=0.01)
    assert flushed == [([0], 1.01), ([1, 2, 3], 1.038)]


async def test_a_push_that_changed_nothing_does_not_hold_back_the_next_change() -> None:
    """A Pod that no endpoint names yet changes nothing: the EndpointSlice that follows it
    still takes the leading edge (and what follows that, the trailing push). A push that did
    change something leaves one trailing push, then the quiet period."""
    changes = [1.0, 1.003, 1.006]
    nothing_first = await _flush_times(changes, settle=0.0, changed=lambda items: items != [0])
    assert _waits(nothing_first, changes) == [0.0, 0.0, 0.0]
    assert _waits(await _flush_times(changes, settle=0.0), changes) == [0.0, 0.0, 0.05]


async def test_a_burst_of_events_ends_in_one_final_push_of_all_of_them() -> None:
    """However a burst is cut, every change is flushed once, in order, and the last flush
    comes after the last change (no change is left pending)."""
    changes = [1.0 + 0.003 * i for i in range(40)]
    for changed in (lambda items: True, lambda items: False, lambda items: len(items) > 1):
        flushed = await _flush_times(changes, changed=changed)
        assert [i for items, _ in flushed for i in items] == list(range(40))
        assert flushed[-1][1] >= changes[-1]


async def test_a_steady_stream_never_starves_with_the_leading_edge() -> None:
    """A change every 5 ms for a second: none waits more than the quiet period (and one step
    of the clock), whether the pushes change something or not."""
    changes = [1.0 + 0.005 * i for i in range(200)]
    for changed in (lambda items: True, lambda items: False):
        flushed = await _flush_times(changes, changed=changed)
        waited = [at - changes[i] for items, at in flushed for i in items]
        assert max(waited) <= 0.05 + 0.001 + 1e-9
    # Pushes that change something are coalesced: one per quiet period, not one per change.
    assert len(await _flush_times(changes)) <= 1 + 1 + 1.0 / 0.05 + 1


async def test_a_burst_allowed_the_leading_edge_is_pushed_at_once_whatever_its_kind() -> None:
    """``leading`` adds bursts (a folder's config change, handed over whole) to the urgent ones
    pushed after their settle when idle; bursts it does not allow wait the quiet period."""
    assert _waits(await _flush_times([1.0], urgent=False, leading=True, settle=0.0), [1.0]) == [0.0]
    assert _waits(await _flush_times([1.0], urgent=False, leading=False, settle=0.0), [1.0]) == [0.05]
    assert _waits(await _flush_times([1.0], urgent=True, leading=False, settle=0.0), [1.0]) == [0.05]
    # Close behind a push: the rest of the change on the same terms, as for urgent ones.
    changes = [1.0, 1.002]
    assert _waits(await _flush_times(changes, urgent=False, leading=True, settle=0.0), changes) == [0.0, 0.0]
