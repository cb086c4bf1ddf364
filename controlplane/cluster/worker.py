"""Singleton work done by the leader only, in a background thread (status writes, the root
ConfigMaps, the webhook's caBundle), as istiod runs its controllers behind leader election.

A worker does one round when woken (leadership started, its input changed) and every
``resync_seconds`` otherwise, so that what someone else edited or deleted is restored.
While this replica does not lead it writes nothing and forgets what it wrote: the next term
starts from what the API holds, not from what an earlier term remembers.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_RESYNC_SECONDS = 60.0


class LeaderWorker(ABC):
    """Subclasses say what one round does (``run_round``) and what to forget between terms
    (``forget``); the loop, its thread and its wake-ups are here."""

    thread_name = "leader-worker"

    def __init__(
        self, is_leader: Callable[[], bool], *, resync_seconds: float = DEFAULT_RESYNC_SECONDS
    ) -> None:
        self._is_leader = is_leader
        self._resync = resync_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0  # objects created, replaced or patched
        self.rounds = 0

    @abstractmethod
    def run_round(self, *, full: bool) -> None:
        """One round while leading. ``full``: a resync (nothing woke the worker), so check
        everything again rather than only what changed since the last round."""

    @abstractmethod
    def forget(self) -> None:
        """Drop what the worker remembers having written (called while not leading)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self, *_: object) -> None:
        """Do a round soon (leadership or the worker's input changed); takes any arguments
        so that it can be a callback as it is."""
        self._wake.set()

    def interrupted(self) -> bool:
        """Whether a round should end now: stopping, or no longer leading."""
        return self._stop.is_set() or not self._is_leader()

    def _run(self) -> None:
        full = True
        while not self._stop.is_set():
            # Cleared before the round, not after: a wake-up during the round (a namespace
            # created meanwhile) must bring another round, not wait for the resync.
            self._wake.clear()
            try:
                if self._is_leader():
                    self.run_round(full=full)
                else:
                    self.forget()
            except Exception:  # a bug in one round must not end the worker for good
                log.exception("%s: a round failed; trying again at the next one",
                              self.thread_name)
            self.rounds += 1
            woken = self._wake.wait(self._resync)
            full = not woken
