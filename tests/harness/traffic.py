"""Steady traffic in a background thread, every outcome recorded, bounded in count and time.

    with TrafficLoop(lambda: http_get(ip, port)[0]) as traffic:
        ...                                   # kill things, restart them
    traffic.failures()                        # [(seconds since start, what went wrong)]

Each call of ``request`` is one request; it returns the HTTP status (200 is success) or raises.
The loop ends when stopped, after ``max_requests`` or after ``max_seconds``, whichever comes
first, so a test that fails never leaves it running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True)
class Outcome:
    at: float  # seconds since the loop started
    status: int | None  # None: no HTTP answer
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


class TrafficLoop:
    def __init__(
        self,
        request: Callable[[], int],
        *,
        interval: float = 0.02,
        max_requests: int = 20_000,
        max_seconds: float = 120.0,
    ) -> None:
        self._request = request
        self._interval = interval
        self._max_requests = max_requests
        self._max_seconds = max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._started = 0.0
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _run(self) -> None:
        end = self._started + self._max_seconds
        for _ in range(self._max_requests):
            if self._stop.is_set() or time.monotonic() > end:
                return
            at = time.monotonic() - self._started
            try:
                outcome = Outcome(at, self._request())
            except Exception as error:  # noqa: BLE001 - every failure is recorded, none stops us
                outcome = Outcome(at, None, f"{type(error).__name__}: {error}")
            with self._lock:
                self._outcomes.append(outcome)
            self._stop.wait(self._interval)

    def start(self) -> Self:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def count(self) -> int:
        with self._lock:
            return len(self._outcomes)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes() if not o.ok]

    def succeeded_since(self, index: int) -> int:
        """Successful requests after the first ``index`` ones (to know traffic went on)."""
        return sum(1 for o in self.outcomes()[index:] if o.ok)
