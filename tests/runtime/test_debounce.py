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


async def _isolated_change(
    urgent: bool, after_flush: float, settle: object = 0.01, leading: bool | None = None
) -> float:
    """One change ``after_flush`` seconds after an earlier change was flushed (quiet 50 ms):
    how long it waited."""
    time = _FakeTime()
    flushed_at: list[float] = []

    async def flush(items: list[int], _seconds: float) -> None:
        flushed_at.append(time.now)

    deb: Debouncer[list[int]] = Debouncer(
        flush, _merge, quiet=0.05, max_delay=10.0,  # type: ignore[arg-type]
        urgent=lambda pending: urgent, settle=settle, clock=time.clock, sleep=time.sleep,  # type: ignore[arg-type]
        leading=None if leading is None else (lambda pending: leading),
    )
    deb.start()
    try:
        for flushes, start in enumerate((1.0, 1.0 + after_flush), start=1):
            time.now = start
            deb.submit(0)
            await asyncio.sleep(0)
            while len(flushed_at) < flushes:  # the clock moves 1 ms per look
                time.now = round(time.now + 0.001, 6)
                await asyncio.sleep(0)
        return flushed_at[-1] - (1.0 + after_flush)
    finally:
        await deb.stop()


async def test_an_isolated_urgent_change_settles_briefly_and_one_close_behind_waits() -> None:
    assert 0.009 <= await _isolated_change(urgent=True, after_flush=1.0) <= 0.011, "settles 10 ms"
    # Within the quiet period of the last flush it is coalesced with what may follow.
    assert 0.04 <= await _isolated_change(urgent=True, after_flush=0.01) <= 0.051
    # Changes that are not urgent always wait for the quiet period.
    assert 0.049 <= await _isolated_change(urgent=False, after_flush=1.0) <= 0.051


async def test_a_burst_that_comes_whole_needs_no_settling() -> None:
    """``settle`` by burst (a folder's change is read whole): none for it, the fixed one else,
    and never more than the quiet period."""
    assert await _isolated_change(urgent=True, after_flush=1.0, settle=lambda pending: 0.0) <= 0.001
    assert 0.029 <= await _isolated_change(urgent=True, after_flush=1.0, settle=lambda pending: 0.03) <= 0.031
    assert 0.049 <= await _isolated_change(urgent=True, after_flush=1.0, settle=lambda pending: 1.0) <= 0.051
    # Close behind a flush, or not urgent: the quiet period, whatever the burst's settle.
    assert 0.04 <= await _isolated_change(urgent=True, after_flush=0.01, settle=lambda pending: 0.0) <= 0.051
    assert 0.049 <= await _isolated_change(urgent=False, after_flush=1.0, settle=lambda pending: 0.0) <= 0.051


async def test_a_burst_allowed_the_leading_edge_settles_whatever_its_kind() -> None:
    """``leading`` adds bursts (a folder's config change, handed over whole) to the urgent ones
    that need only their settle after an idle period; close behind a flush they wait as before."""
    assert await _isolated_change(urgent=False, after_flush=1.0, settle=lambda p: 0.0, leading=True) <= 0.001
    assert 0.009 <= await _isolated_change(urgent=False, after_flush=1.0, leading=True) <= 0.011
    assert 0.049 <= await _isolated_change(urgent=False, after_flush=0.01, settle=lambda p: 0.0, leading=True) <= 0.051
    assert 0.049 <= await _isolated_change(urgent=False, after_flush=1.0, settle=lambda p: 0.0, leading=False) <= 0.051
    # An urgent burst the caller does not allow it waits the quiet period.
    assert 0.049 <= await _isolated_change(urgent=True, after_flush=1.0, settle=lambda p: 0.0, leading=False) <= 0.051
