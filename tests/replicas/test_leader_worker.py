"""The loop every leader-only worker shares: rounds only while leading, forgetting between
terms, woken at once, and alive after a round that failed."""

from __future__ import annotations

from controlplane.cluster.worker import LeaderWorker
from tests.harness.wait import wait_for
from tests.replicas.cluster import LeaderFlag


class Recorder(LeaderWorker):
    thread_name = "recorder"

    def __init__(self, leading: LeaderFlag, fail_first: bool = False) -> None:
        super().__init__(leading, resync_seconds=30)  # only wake-ups drive it here
        self.calls: list[str] = []
        self._fail = fail_first

    def run_round(self, *, full: bool) -> None:
        self.calls.append("full" if full else "woken")
        if self._fail:
            self._fail = False
            raise RuntimeError("a bug in one round")

    def forget(self) -> None:
        self.calls.append("forget")


def test_rounds_only_while_leading_and_forget_between_terms(leading):
    worker = Recorder(leading)
    worker.start()
    try:
        wait_for(lambda: worker.rounds == 1, message="first round")
        assert worker.calls == ["forget"]  # not leading: nothing done
        leading.value = True
        worker.wake()
        wait_for(lambda: worker.rounds == 2, message="woken")
        assert worker.calls == ["forget", "woken"]
        leading.value = False
        worker.wake()
        wait_for(lambda: worker.rounds == 3, message="term over")
        assert worker.calls[-1] == "forget"
    finally:
        worker.stop()


def test_a_failed_round_does_not_end_the_worker(leading):
    leading.value = True
    worker = Recorder(leading, fail_first=True)
    worker.start()
    try:
        wait_for(lambda: worker.rounds == 1, message="the failing round")
        worker.wake()
        wait_for(lambda: worker.rounds == 2, message="another round")
        assert worker.calls == ["full", "woken"]
    finally:
        worker.stop()


class WokenDuringItsRound(Recorder):
    """A change arrives while the first round runs (a namespace created meanwhile)."""

    def run_round(self, *, full: bool) -> None:
        super().run_round(full=full)
        if len(self.calls) == 1:
            self.wake()


def test_a_wake_up_during_a_round_brings_another_round(leading):
    leading.value = True
    worker = WokenDuringItsRound(leading)  # resync 30 s: only the wake-up can bring round 2
    worker.start()
    try:
        wait_for(lambda: worker.rounds == 2, deadline=10, message="the round the wake-up asked for")
        assert worker.calls == ["full", "woken"]
    finally:
        worker.stop()
