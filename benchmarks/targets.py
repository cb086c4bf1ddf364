"""The servers under test, each a separate process: the floor, and our control plane.

Both take a mesh state, start, then apply changes; ``apply`` returns the moment the change was
made (the floor: its batch went out; the control plane: its YAML file was renamed into place).
Anything slow that belongs to the benchmark rather than to the server (translating for the floor,
rendering YAML) happens before that moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import expected as exp
from benchmarks import mesh, server_metrics
from benchmarks.floor_server import encode_batch
from benchmarks.monitor import ProcessMonitor

REPO = Path(__file__).resolve().parent.parent
# Every simulated proxy connects from 127.0.0.1 without a credential: the cap on streams per
# peer address (for proxies without one) is lifted; the other limits stay at their defaults.
DEFAULT_CP_COMMAND = (
    "{python} -m controlplane serve --config-dir {config_dir} --xds-plaintext-port {port} "
    "--no-xds-tls --monitoring-port {monitoring_port} --ca-dir {workdir}/certs "
    "--log-level warning --xds-max-streams-per-peer 0"
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def read_event(process: asyncio.subprocess.Process, kind: str, timeout: float,
                     what: str) -> dict[str, Any]:
    """The next JSON line ``{"ev": kind, ...}`` that ``process`` prints (others are skipped)."""
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{what} exited")
        event = json.loads(line)
        if event["ev"] == kind:
            return event  # type: ignore[no-any-return]


class Target:
    name = "target"
    host = "127.0.0.1"
    port = 0
    process: asyncio.subprocess.Process | None = None
    monitor: ProcessMonitor | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, state: mesh.MeshState, expected: exp.Expected) -> None:
        raise NotImplementedError

    async def apply_state(self, state: mesh.MeshState, changed: list[int],
                          expected: exp.Expected | None) -> float:
        """Make ``state`` current (services ``changed`` differ); returns the change's moment."""
        raise NotImplementedError

    def notes(self) -> dict[str, Any]:
        """Facts about the run worth keeping in the results (none by default)."""
        return {}

    async def server_metrics(self) -> dict[str, float]:
        """The server's own metrics now (``server_metrics.totals``); none for the floor."""
        return {}

    def prepare_endpoints(self, assignments: dict[str, bytes]) -> Any:
        """Whatever apply_endpoints needs, computed before the clock starts."""
        return None

    async def apply_endpoints(self, state: mesh.MeshState, index: int, prepared: Any) -> float:
        raise NotImplementedError

    async def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        proc = self.process
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.process = None


class FloorTarget(Target):
    """The floor server; with ``workers`` > 1, that many serving processes on one port
    (target ``floor-<N>proc``; CPU and peak RSS are summed over them)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.name = "floor" if workers == 1 else f"floor-{workers}proc"
        self._accepted: list[int] | None = None

    async def start(self, state: mesh.MeshState, expected: exp.Expected) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.floor_server", "--port", "0",
            "--workers", str(self.workers),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO,
        )
        event = await self._event("listening", 30)
        self.port = event["port"]
        self.monitor = ProcessMonitor(self.process.pid)
        self._current = expected
        await self._send(exp.floor_batch(None, expected))
        await self._event("applied", 60)

    async def _event(self, kind: str, timeout: float) -> dict[str, Any]:
        assert self.process is not None
        return await read_event(self.process, kind, timeout, "floor server")

    async def _send(self, batch: list[dict[str, Any]]) -> float:
        assert self.process is not None and self.process.stdin is not None
        data = encode_batch(batch)
        moment = time.monotonic()
        self.process.stdin.write(data)
        await self.process.stdin.drain()
        return moment

    async def apply_state(self, state, changed, expected) -> float:
        assert expected is not None
        batch = exp.floor_batch(self._current, expected)
        self._current = expected
        return await self._send(batch)

    def prepare_endpoints(self, assignments):
        self._current = exp.with_endpoints(self._current, assignments)
        return exp.endpoint_batch(list(self._current.by_group), assignments)

    async def apply_endpoints(self, state, index, prepared) -> float:
        return await self._send(prepared)

    def notes(self) -> dict[str, Any]:
        if self.workers == 1 or self._accepted is None:
            return {}
        return {"workers": self.workers, "streams_accepted_per_worker": self._accepted}

    async def stop(self) -> None:
        """End the server's input: it prints the streams each process accepted, then exits."""
        proc = self.process
        if proc is not None and proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()
            try:
                self._accepted = (await self._event("served", 15))["accepted"]
            except (TimeoutError, RuntimeError, ValueError):
                pass  # stopped all the same below
        await super().stop()


class ControlPlaneTarget(Target):
    """``python -m controlplane serve --config-dir DIR --xds-plaintext-port P`` on a folder
    written by the generator; changes are atomic file replacements in that folder."""

    name = "controlplane"

    def __init__(self, command: str = DEFAULT_CP_COMMAND, workdir: Path | None = None) -> None:
        self.command = command
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="cp-bench-")
        self.workdir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.config_dir = self.workdir / "mesh"
        self.log_path = self.workdir / "controlplane.log"

    async def start(self, state, expected) -> None:
        mesh.write_folder(self.config_dir, state)
        await self._launch()

    async def _launch(self, **fields: Any) -> None:
        """Start the server from ``self.command`` (``fields`` fill in more of it)."""
        self.port, self.monitoring_port = free_port(), free_port()
        argv = shlex.split(self.command.format(
            python=sys.executable, config_dir=self.config_dir, port=self.port,
            monitoring_port=self.monitoring_port, workdir=self.workdir, **fields,
        ))
        self._log = open(self.log_path, "wb")  # noqa: SIM115, ASYNC230 - lives as long as the server
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            cwd=self.workdir, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.monitor = ProcessMonitor(self.process.pid)
        await self._until_listening(60)

    async def _until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"control plane exited ({self.process.returncode}): "
                                   + self.log_tail())
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("control plane did not listen in time: " + self.log_tail())

    async def server_metrics(self) -> dict[str, float]:
        url = f"http://{self.host}:{self.monitoring_port}/metrics"

        def read() -> str:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()  # type: ignore[no-any-return]

        try:
            return server_metrics.totals(await asyncio.to_thread(read))
        except OSError:  # not serving metrics (another --cp-command): nothing to tell
            return {}

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def apply_state(self, state, changed, expected) -> float:
        moment = time.monotonic()
        mesh.write_folder(self.config_dir, state, changed)
        return moment

    async def apply_endpoints(self, state, index, prepared) -> float:
        moment = time.monotonic()
        mesh.write_service(self.config_dir, state, index)
        return moment

    async def stop(self) -> None:
        await super().stop()
        if getattr(self, "_log", None):
            self._log.close()
        if self._tmp is not None:
            self._tmp.cleanup()
