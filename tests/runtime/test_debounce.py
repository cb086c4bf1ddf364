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
