"""Coalesce bursts of input changes into pushes, as Istio's PILOT_DEBOUNCE_AFTER/MAX do.

A push happens once the input has been quiet for ``quiet`` seconds, or ``max_delay``
seconds after the first change of a burst, whichever comes first. A burst that is
``urgent`` (endpoint changes, whose push is cheap) is not held past ``quiet`` after its
first change: under a steady stream of them a change waits at most the quiet period plus
the push running when it came, never ``max_delay``. An urgent burst that starts after the
debouncer has been idle for ``quiet`` needs only ``settle`` seconds of quiet (a leading
edge): an isolated endpoint change pays a few milliseconds, not the quiet period, yet the
events Kubernetes sends for one change a few milliseconds apart (the new Pod, then the
EndpointSlice naming it) still make one push; a stream of changes is coalesced as before.
``settle`` may depend on the burst: a source that hands over each change whole (a folder's
file, read at once) needs none. ``leading`` tells which bursts take the leading edge: the
urgent ones by default; a caller may add changes of any kind from a source that hands each
over whole (a folder's, whose watcher already gathers a storm of file events), while the
per-object events of Kubernetes keep the quiet period (PILOT_DEBOUNCE_AFTER), which a
``kubectl apply`` of several documents needs to make one push.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("controlplane.debounce")

T = TypeVar("T")


class Debouncer(Generic[T]):
    """Collects items with ``submit`` and hands each burst to ``flush`` as one merged value.

    ``merge(accumulated, item)`` folds an item into the pending value; ``flush`` runs
    one burst at a time (a burst that arrives during a flush waits for the next one).
    """

    def __init__(
        self,
        flush: Callable[[T, float], Awaitable[None]],
        merge: Callable[[T | None, T], T],
        *,
        quiet: float,
        max_delay: float,
        urgent: Callable[[T], bool] = lambda pending: False,
        settle: float | Callable[[T], float] = 0.01,
        leading: Callable[[T], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._flush = flush
        self._merge = merge
        self._quiet = quiet
        self._max_delay = max_delay
        self._urgent = urgent
        self._leading = leading if leading is not None else urgent
        self._settle: Callable[[T], float] = settle if callable(settle) else _fixed(settle)
        self._clock = clock
        self._sleep = sleep
        self._pending: T | None = None
        self._first_at = 0.0
        self._last_at = 0.0
        self._last_flush_at = float("-inf")  # when the last flush ended
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="debouncer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def submit(self, item: T) -> None:
        """Record a change; must be called on the event loop's thread."""
        now = self._clock()
        if self._pending is None:
            self._first_at = now
        self._pending = self._merge(self._pending, item)
        self._last_at = now
        self._wake.set()

    @property
    def idle(self) -> bool:
        return self._pending is None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Wait until the burst is quiet, or it has lasted max_delay (quiet when urgent).
            while self._pending is not None:
                now = self._clock()
                urgent = self._urgent(self._pending)
                isolated = self._first_at - self._last_flush_at >= self._quiet and self._leading(self._pending)
                settle = min(self._settle(self._pending), self._quiet) if isolated else self._quiet
                quiet_at = self._last_at + settle
                longest = self._quiet if urgent else self._max_delay
                due = min(quiet_at, self._first_at + longest)
                if now >= due:
                    break
                await self._sleep(due - now)
            pending, self._pending = self._pending, None
            if pending is None:
                continue
            debounce_seconds = self._clock() - self._first_at
            try:
                await self._flush(pending, debounce_seconds)
            except Exception:  # one failed push must not stop later ones
                log.exception("push failed")
            finally:
                self._last_flush_at = self._clock()


def _fixed(seconds: float) -> Callable[[object], float]:
    return lambda pending: seconds
