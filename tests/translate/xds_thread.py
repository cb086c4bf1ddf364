"""Our ADS server on its own event loop thread, so synchronous tests can drive Envoys."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.harness.xds_server import running_xds_server


class ThreadedXds:
    def __init__(self, loop: asyncio.AbstractEventLoop, server: Any) -> None:
        self.loop = loop
        self.server = server
        self.port: int = server.port

    def set_snapshot(self, group: str, resources: dict[str, list[Any]]) -> None:
        """Publish on the server's loop (the cache notifies stream watchers there)."""
        async def publish() -> None:
            self.server.cache.set_snapshot(group, resources)

        asyncio.run_coroutine_threadsafe(publish(), self.loop).result(timeout=10)


@contextmanager
def xds_server_thread() -> Iterator[ThreadedXds]:
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            async with running_xds_server() as server:
                started["server"] = server
                ready.set()
                await stop.wait()
        except BaseException as exc:  # surface start-up failures to the test
            started["error"] = exc
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        ready.wait(timeout=30)
        if "error" in started:
            raise started["error"]
        yield ThreadedXds(loop, started["server"])
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        loop.close()
