"""The coordinator's side of the load client: start the client processes, send them commands,
collect what they report (synced proxies, probe hits, totals)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.probes import Probe


@dataclass(frozen=True)
class ClientConfig:
    target: str  # host:port of the ADS server
    proxies: int
    groups: int
    namespaces: int
    mode: str = "sotw"  # or "delta"
    processes: int = 1
    first: int = 0  # index of the first proxy (pools side by side get distinct proxies)


class ClientPool:
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.procs: list[asyncio.subprocess.Process] = []
        self.synced: dict[int, tuple[float, float, dict[str, int]]] = {}
        self.hits: dict[str, dict[int, tuple[float, float]]] = {}
        self._probe_oks: dict[str, int] = {}
        self._reports: list[list[dict[str, Any]]] = []
        self._changed = asyncio.Event()
        self._readers: list[asyncio.Task] = []
        self._ready = 0
        self.errors: list[str] = []

    async def start(self) -> None:
        c = self.config
        processes = max(1, min(c.processes, c.proxies))
        share, extra = divmod(c.proxies, processes)
        first = c.first
        for i in range(processes):
            count = share + (1 if i < extra else 0)
            arg = json.dumps({"target": c.target, "first": first, "count": count,
                              "groups": c.groups, "namespaces": c.namespaces, "mode": c.mode})
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.load_client", arg,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit=2**30,
            )
            self.procs.append(proc)
            self._readers.append(asyncio.create_task(self._read(proc)))
            first += count
        await self._until(lambda: self._ready == len(self.procs), 60, "client processes ready")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            event = json.loads(line)
            kind = event["ev"]
            if kind == "ready":
                self._ready += 1
            elif kind == "synced":
                for index, arrived, acked, counts in event["proxies"]:
                    self.synced[index] = (arrived, acked, counts)
            elif kind == "hits":
                for probe_id, index, arrived, acked in event["hits"]:
                    self.hits.setdefault(probe_id, {})[index] = (arrived, acked)
            elif kind == "probe_ok":
                self._probe_oks[event["id"]] = self._probe_oks.get(event["id"], 0) + 1
            elif kind == "report":
                self._reports.append(event["proxies"])
            self._changed.set()
        if proc.returncode not in (None, 0):
            self.errors.append(f"client process exited with {proc.returncode}")

    async def _until(self, condition, timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return True

    async def _broadcast(self, command: dict[str, Any]) -> None:
        data = (json.dumps(command) + "\n").encode()
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(data)
        await asyncio.gather(*(p.stdin.drain() for p in self.procs if p.stdin))

    def cpu_seconds(self) -> float:
        """CPU the client processes used so far (to tell when the clients, not the server,
        are the bottleneck)."""
        import psutil

        total = 0.0
        for proc in self.procs:
            try:
                t = psutil.Process(proc.pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    async def connect(self) -> float:
        """Every proxy opens its stream now; returns the time the command went out."""
        t0 = time.monotonic()
        await self._broadcast({"cmd": "connect"})
        return t0

    async def wait_synced(self, timeout: float) -> bool:
        return await self._until(lambda: len(self.synced) >= self.config.proxies, timeout, "synced")

    async def register(self, change_id: str, probes: list[Probe]) -> None:
        """Register probes (before making the change they detect) on every client process."""
        await self._broadcast({"cmd": "probe", "id": change_id, "probes": [p.to_json() for p in probes]})
        await self._until(lambda: self._probe_oks.get(change_id, 0) >= len(self.procs), 30, "probe")

    async def forget(self, probe_ids: list[str]) -> None:
        await self._broadcast({"cmd": "forget", "ids": probe_ids})

    def converged(self, probe_ids: list[str]) -> dict[int, tuple[float, float]]:
        """Proxies that satisfied every probe of ``probe_ids``: (last arrival, last ACK)."""
        result: dict[int, tuple[float, float]] = {}
        for index in range(self.config.first, self.config.first + self.config.proxies):
            times = [self.hits.get(p, {}).get(index) for p in probe_ids]
            if all(t is not None for t in times):
                result[index] = (max(t[0] for t in times), max(t[1] for t in times))
        return result

    async def wait_converged(self, probe_ids: list[str], timeout: float) -> bool:
        return await self._until(
            lambda: len(self.converged(probe_ids)) >= self.config.proxies, timeout, "converged"
        )

    async def report(self) -> list[dict[str, Any]]:
        before = len(self._reports)
        await self._broadcast({"cmd": "report"})
        await self._until(lambda: len(self._reports) >= before + len(self.procs), 60, "report")
        return [p for batch in self._reports[before:] for p in batch]

    async def stop(self) -> None:
        try:
            await self._broadcast({"cmd": "stop"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._readers:
            task.cancel()
