"""The heap trimmer hands free heap back to the system (glibc), and only when it is worth it."""

from __future__ import annotations

import asyncio
import os

import pytest

from controlplane.server.heap import HeapTrimmer, trim_periodically

BLOCK = 16 * 1024  # over pymalloc's limit: glibc's malloc, in an arena
BLOCKS = 4096  # 64 MiB, half of it freed between live blocks


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def trimmer() -> HeapTrimmer:
    trimmer = HeapTrimmer()
    if not trimmer.available:
        pytest.skip("needs glibc 2.33+ (mallinfo2, malloc_trim)")
    return trimmer


def test_free_heap_between_live_blocks_goes_back_to_the_system(trimmer: HeapTrimmer) -> None:
    blocks = [b"x" * BLOCK for _ in range(BLOCKS)]  # written: resident
    kept = blocks[::2]  # every other block stays, so the freed ones cannot merge into the top
    del blocks
    usage = trimmer.usage()
    assert usage is not None and usage.free >= BLOCKS // 2 * BLOCK * 0.9
    before = _rss_bytes()
    assert trimmer.trim()
    released = before - _rss_bytes()
    # Each freed 16 KiB block holds at least three whole pages the trim can give back.
    assert released >= BLOCKS // 2 * 12 * 1024 * 0.9, f"only {released / 2**20:.1f} MiB released"
    assert trimmer.trims == 1
    assert all(len(block) == BLOCK for block in kept)  # what is live is untouched


def test_no_trim_below_the_threshold(trimmer: HeapTrimmer) -> None:
    usage = trimmer.usage()
    assert usage is not None
    trimmer.min_free_bytes = usage.free + 2**30
    assert not trimmer.trim()
    assert trimmer.trims == 0


def test_the_periodic_trim_runs_until_cancelled(trimmer: HeapTrimmer) -> None:
    trimmer.min_free_bytes = 0  # trims at every pass

    async def run() -> None:
        task = asyncio.create_task(trim_periodically(trimmer, 0.01))
        while trimmer.trims < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(run(), 30))


def test_a_zero_interval_turns_it_off() -> None:
    trimmer = HeapTrimmer(min_free_bytes=0)
    asyncio.run(asyncio.wait_for(trim_periodically(trimmer, 0), 5))
    assert trimmer.trims == 0
