"""Wait for eventual states: poll a condition until it holds or a generous deadline passes.

Tests use these to wait, never to assert on speed: the deadline is a safety net, not a target.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_DEADLINE = 30.0


class ConditionTimeout(AssertionError):
    pass


def wait_for(
    condition: Callable[[], T],
    *,
    deadline: float = DEFAULT_DEADLINE,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Call `condition` until it returns something truthy (exceptions count as not yet)."""
    end = time.monotonic() + deadline
    last: Any = None
    while True:
        try:
            result = condition()
            if result:
                return result
            last = result
        except Exception as error:  # noqa: BLE001 - not ready yet
            last = error
        if time.monotonic() > end:
            raise ConditionTimeout(f"{message} not reached after {deadline}s; last: {last!r}")
        time.sleep(interval)


async def eventually(
    condition: Callable[[], Any],
    *,
    deadline: float = DEFAULT_DEADLINE,
    interval: float = 0.05,
    message: str = "condition",
) -> Any:
    """Async form. A plain function runs in a thread (so blocking HTTP reads do not stall the
    event loop that may be serving xDS); a coroutine function is awaited."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    last: Any = None
    while True:
        try:
            if inspect.iscoroutinefunction(condition):
                result = await condition()
            else:
                result = await asyncio.to_thread(condition)
            if result:
                return result
            last = result
        except Exception as error:  # noqa: BLE001 - not ready yet
            last = error
        if loop.time() > end:
            raise ConditionTimeout(f"{message} not reached after {deadline}s; last: {last!r}")
        await asyncio.sleep(interval)
