"""Fixed-window counters, as envoyproxy/ratelimit keeps them: one counter per descriptor and
window (``<domain>_<key>_<value>..._<window start>``), incremented by the request's hits and
expiring with its window. Redis (INCRBY and EXPIRE pipelined, one round trip for every
descriptor of a request) or memory (one process: the local mesh, tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Protocol

Increment = tuple[str, int, int]  # (key, hits, window seconds)


class Counters(Protocol):
    async def increment(self, items: Sequence[Increment]) -> list[int]:
        """Add each item's hits to its key; the counts after."""
        ...

    async def close(self) -> None: ...


class MemoryCounters:
    """Counters in this process; expired windows are swept as new ones start."""

    def __init__(self, clock: Callable[[], float] = time.time, max_keys: int = 1_000_000) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._max_keys = max_keys
        self._next_sweep = 0.0

    async def increment(self, items: Sequence[Increment]) -> list[int]:
        now = self._clock()
        if now >= self._next_sweep or len(self._counts) >= self._max_keys:
            self._sweep(now)
        out = []
        for key, hits, seconds in items:
            count, expires = self._counts.get(key, (0, now + seconds))
            if expires <= now:
                count, expires = 0, now + seconds
            count += hits
            self._counts[key] = (count, expires)
            out.append(count)
        return out

    def _sweep(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._next_sweep = now + 1.0

    async def close(self) -> None:
        self._counts.clear()


class RedisCounters:
    """Counters in Redis (``redis://host:port/db``), shared by every RLS replica.

    The increments of requests that arrive together (one event loop turn) go in one pipeline:
    one round trip and one pass through the client library for all of them."""

    MAX_BATCH = 256  # requests per pipeline

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis_asyncio

        self._client = redis_asyncio.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._pending: list[tuple[Sequence[Increment], asyncio.Future[list[int]]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Future[None]] = set()  # pipelines in flight

    async def increment(self, items: Sequence[Increment]) -> list[int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        self._pending.append((items, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.MAX_BATCH):
            task = asyncio.ensure_future(self._execute(pending[start:start + self.MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, batch: list[tuple[Sequence[Increment], asyncio.Future[list[int]]]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for items, _ in batch:
            for key, hits, seconds in items:
                pipe.incrby(key, hits)
                pipe.expire(key, seconds)
        try:
            replies = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the store's error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for items, future in batch:
            if not future.done():
                future.set_result([int(replies[at + 2 * i]) for i in range(len(items))])
            at += 2 * len(items)

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()
