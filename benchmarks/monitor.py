"""CPU seconds and RSS of the process under test (and its children), sampled with psutil."""

from __future__ import annotations

import threading
import time

import psutil


class ProcessMonitor:
    """Samples RSS every ``interval`` seconds in a thread; ``mark()`` starts a new window whose
    peak and CPU seconds ``window()`` returns."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.overall_peak = 0
        self._cpu_mark = self.cpu_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _processes(self) -> list[psutil.Process]:
        try:
            return [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        total = 0
        for p in self._processes():
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self._processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.rss()
            self.peak = max(self.peak, rss)
            self.overall_peak = max(self.overall_peak, rss)
            time.sleep(self.interval)

    def mark(self) -> None:
        self.peak = self.rss()
        self._cpu_mark = self.cpu_seconds()

    def window(self) -> dict[str, float]:
        rss = self.rss()
        self.peak = max(self.peak, rss)
        return {
            "cpu_seconds": round(self.cpu_seconds() - self._cpu_mark, 3),
            "peak_rss_mb": round(self.peak / 2**20, 1),
            "rss_mb": round(rss / 2**20, 1),
        }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
