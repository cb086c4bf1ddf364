"""Coalesce bursts of input changes into pushes, as Istio's PILOT_DEBOUNCE_AFTER/MAX do.

A push happens once the input has been quiet for ``quiet`` seconds, or ``max_delay``
seconds after the first change of a burst, whichever comes first. A burst that is
``urgent`` (endpoint changes, whose push is cheap) is not held past ``quiet`` after its
first change: under a steady stream of them a change waits at most the quiet period plus
the push running when it came, never ``max_delay``.

A leading edge, for the bursts ``leading`` allows (the urgent ones by default; a caller
adds a folder's changes, each handed over whole): one that starts after the debouncer has
been idle for ``quiet`` is pushed after ``settle(burst)`` seconds of quiet, which the caller
makes none for a burst that is complete (a folder's change; a Kubernetes endpoint event
that leaves no endpoint waiting for its Pod) and a few milliseconds for one that is not
(Kubernetes sends the new Pod, the EndpointSlice naming it and the old Pod's deletion as
separate events, in any order). What follows close behind such a push (the rest of the
change) makes one trailing push on the same terms. Anything later within the quiet period
is coalesced as Istio's PILOT_DEBOUNCE_AFTER does: a stream of changes gets these two quick
pushes, then one per quiet period. Other bursts (the per-object events of a ``kubectl
apply``) always wait the quiet period.

A flush that returns False changed nothing any proxy is sent (a Pod no endpoint refers to):
it does not count as a push here, so the event that follows it (the EndpointSlice naming
the new Pod) still takes the leading edge, as Istio never pushes for such a Pod at all.
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
    one burst at a time (a burst that arrives during a flush waits for the next one) and
    returns False when the burst changed nothing (see the module doc).
    """

    def __init__(
        self,
        flush: Callable[[T, float], Awaitable[bool | None]],
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
        self._last_flush_at = float("-inf")  # when the last flush that changed something ended
        self._after_leading_edge = False  # that flush was taken on the leading edge
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
            leading_edge = False
            while self._pending is not None:
                now = self._clock()
                leading = self._leading(self._pending)
                leading_edge = leading and self._first_at - self._last_flush_at >= self._quiet
                trailing = leading and self._after_leading_edge
                quick = leading_edge or trailing
                settle = min(self._settle(self._pending), self._quiet) if quick else self._quiet
                longest = self._quiet if self._urgent(self._pending) else self._max_delay
                due = min(self._last_at + settle, self._first_at + longest)
                if now >= due:
                    break
                await self._sleep_or_wake(due - now)
            pending, self._pending = self._pending, None
            if pending is None:
                continue
            debounce_seconds = self._clock() - self._first_at
            changed: bool | None = True
            try:
                changed = await self._flush(pending, debounce_seconds)
            except Exception:  # one failed push must not stop later ones
                log.exception("push failed")
            finally:
                if changed is not False:
                    self._last_flush_at = self._clock()
                    self._after_leading_edge = leading_edge

    async def _sleep_or_wake(self, seconds: float) -> None:
        """Sleep, but look again as soon as a change comes: it may complete the burst (the
        Pod its slice was waiting for), whose settle is then over."""
        self._wake.clear()
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            woken.cancel()


def _fixed(seconds: float) -> Callable[[object], float]:
    return lambda pending: seconds
