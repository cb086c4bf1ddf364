"""Giving the C heap that bursts freed back to the system (glibc's ``malloc_trim``).

A push makes every connected proxy answer at once: on a 1,000-service mesh each Envoy's EDS
ACK names every cluster (~70 KB), and gRPC reads 1,000 of them within a fraction of a second
into buffers of up to twice that. Once they are handled the memory is free, but glibc keeps
it in its arenas, spread between live blocks so the arenas cannot shrink: during the
benchmark's ten endpoint changes at P=1,000 up to ~200 MB of the arenas were free and
resident (``mallinfo2``'s fordblks), and the peak RSS was that plus the next burst.
``malloc_trim(0)`` hands those free pages back (``MADV_DONTNEED``); the next burst faults
them in again, so the peak is one burst over what is live instead of every burst's leftovers.
(A fixed 64 KiB mmap threshold does the same for the read buffers but maps every large
response afresh: one cold start at P=1,000, machine loaded, took 4.5 s CPU against 3.7.)

Only where glibc provides both calls (Linux with glibc 2.33+); elsewhere this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import sys
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Below this much free heap a trim is not worth its pass over the arenas.
MIN_FREE_BYTES = 16 * 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]


@dataclass(frozen=True)
class HeapUsage:
    """glibc's own account (``mallinfo2``), in bytes."""

    in_use: int  # blocks handed out from its arenas
    free: int  # free in its arenas: resident until trimmed, if they were ever touched
    mapped: int  # blocks over the mmap threshold, each its own mapping


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = (ctypes.c_size_t,)
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc (musl), or glibc before 2.33
        return None
    return libc


class HeapTrimmer:
    """``trim()`` returns the free heap to the system when there is enough of it. Both calls
    release the GIL (ctypes), and gRPC's threads allocate meanwhile: run it off the loop."""

    def __init__(self, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.min_free_bytes = min_free_bytes
        self._libc = _glibc()
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._libc is not None

    def usage(self) -> HeapUsage | None:
        """None where glibc's calls are missing."""
        if self._libc is None:
            return None
        info = self._libc.mallinfo2()
        return HeapUsage(in_use=info.uordblks, free=info.fordblks, mapped=info.hblkhd)

    def trim(self) -> bool:
        """Trim if at least ``min_free_bytes`` are free; True if it trimmed."""
        usage = self.usage()
        if self._libc is None or usage is None or usage.free < self.min_free_bytes:
            return False
        started = time.perf_counter()
        self._libc.malloc_trim(0)
        self.trims += 1
        log.debug("heap trimmed: %.0f MiB were free, %.1f ms", usage.free / 2**20,
                  (time.perf_counter() - started) * 1000)
        return True


async def trim_periodically(trimmer: HeapTrimmer, interval: float) -> None:
    """Every ``interval`` seconds, trim in a worker thread (a few ms with hundreds of MB of
    arenas; the event loop keeps serving)."""
    if not trimmer.available or interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(trimmer.trim)
