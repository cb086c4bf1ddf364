"""Refusals logged in aggregate: one line per interval with counts, never one per request.

A flood of bad requests would otherwise be a flood of log lines (the disk and whoever reads
the log pay for it). The first refusal starts an interval; at its end one line tells how
many were refused, why, and from where (the few sources with the most).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RefusalSummary:
    logger: logging.Logger
    what: str  # "certificate requests"
    interval: float = 10.0
    max_sources: int = 1_000  # sources tracked per interval; the rest only counted
    top: int = 3
    clock: Callable[[], float] = time.monotonic
    _reasons: Counter[str] = field(default_factory=Counter, repr=False)
    _sources: Counter[str] = field(default_factory=Counter, repr=False)
    _since: float | None = field(default=None, repr=False)
    _timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def refused(self, reason: str, source: str) -> None:
        now = self.clock()
        if self._since is not None and now - self._since >= self.interval:
            self.flush()  # no event loop ran the timer (or it is late): the interval is over
        if self._since is None:
            self._since = now
            self._schedule()
        self._reasons[reason] += 1
        if source in self._sources or len(self._sources) < self.max_sources:
            self._sources[source] += 1

    def flush(self) -> None:
        """Log what was counted since the interval began, if anything, and start afresh."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._since is None:
            return
        seconds = max(0.0, self.clock() - self._since)
        total = sum(self._reasons.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in self._reasons.most_common())
        sources = ", ".join(f"{source} ({n})" for source, n in self._sources.most_common(self.top))
        self.logger.warning(
            "refused %d %s in %.0f s: %s; most from %s", total, self.what, seconds, reasons, sources
        )
        self._reasons.clear()
        self._sources.clear()
        self._since = None

    def stop(self) -> None:
        self.flush()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # outside a loop: the next refusal after the interval flushes
        self._timer = loop.call_later(self.interval, self.flush)
