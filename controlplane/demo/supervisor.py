"""Start and stop the demo's processes, and make sure none outlives the demo.

Every process gets its own session (process group), so that stopping it also
stops whatever it started; stdout and stderr go to ``<workdir>/logs/<name>.log``.
Stopping sends SIGTERM to every group at once, waits a grace period, then
SIGKILLs what is left. Cleanup runs on leaving the context manager (normal
end, exception, Ctrl-C), at interpreter exit, on SIGTERM/SIGHUP to the demo
(turned into SystemExit so the same path runs), and on Linux each child also
gets PR_SET_PDEATHSIG so it dies with the demo even if the demo is SIGKILLed.

``<workdir>/processes.json`` lists what is running (name, pid, process group,
log), for a human looking at a kept mesh; ``<workdir>/started.jsonl`` records
every process group ever started, for the tests that check cleanup.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

DEFAULT_GRACE_SECONDS = 3.0
_PR_SET_PDEATHSIG = 1


class ProcessFailed(RuntimeError):
    """A process exited or never became ready; the message carries its log's tail."""


@dataclass(frozen=True)
class HttpReady:
    """Ready when GET url answers with a status below 500 (or exactly ``status``)."""

    url: str
    status: int | None = 200

    def check(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=1.0) as response:
                return self.status is None or response.status == self.status
        except urllib.error.HTTPError as exc:
            return self.status is None and exc.code < 500
        except (OSError, ValueError):
            return False

    def describe(self) -> str:
        return f"GET {self.url}"


@dataclass(frozen=True)
class TcpReady:
    host: str
    port: int

    def check(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"


Readiness = HttpReady | TcpReady


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    ready: Readiness | None = None
    env: Mapping[str, str] = field(default_factory=dict)  # added to the demo's environment
    cwd: Path | None = None


@dataclass
class Managed:
    spec: ProcessSpec
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
    except OSError:
        return None


# Loaded in the parent, so the child between fork and exec only makes one call.
_LIBC = _load_libc()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the demo dies, however it dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc (Linux)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    """True while any process of the group runs (zombies waiting to be reaped do not count)."""
    if Path("/proc/self/stat").exists():
        return bool(group_members(pgid))
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Supervisor:
    """Owns every process the demo starts. Use as a context manager."""

    def __init__(self, workdir: Path, *, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self.workdir = Path(workdir)
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.grace_seconds = grace_seconds
        self._processes: dict[str, Managed] = {}
        self._lock = threading.RLock()
        self._previous_handlers: dict[int, object] = {}
        self._stopped = False
        atexit.register(self.stop_all)

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> Self:
        self.install_signal_handlers()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
        self.restore_signal_handlers()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGHUP unwind the main thread like Ctrl-C does (only from the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return

        def unwind(signum: int, _frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        for signum in (signal.SIGTERM, signal.SIGHUP):
            self._previous_handlers[signum] = signal.signal(signum, unwind)

    def restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous_handlers.clear()

    # -- processes ---------------------------------------------------------------

    def start(self, spec: ProcessSpec) -> Managed:
        with self._lock:
            if spec.name in self._processes and self._processes[spec.name].running():
                raise ValueError(f"process {spec.name!r} is already running")
            self._stopped = False
            log_path = self.log_dir / f"{spec.name}.log"
            env = {**os.environ, **spec.env}
            with open(log_path, "ab") as log:
                log.write(f"$ {' '.join(spec.argv)}\n".encode())
                log.flush()
                popen = subprocess.Popen(
                    list(spec.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=spec.cwd,
                    start_new_session=True,
                    # One prctl call, no locks taken: safe enough beside the demo's threads.
                    preexec_fn=_die_with_parent if _LIBC is not None else None,  # noqa: PLW1509
                )
            managed = Managed(spec=spec, popen=popen, log_path=log_path)
            self._processes[spec.name] = managed
            with open(self.workdir / "started.jsonl", "a") as started:
                started.write(json.dumps({"name": spec.name, "pgid": popen.pid}) + "\n")
            self._write_state()
            return managed

    def wait_ready(self, names: Sequence[str] | None = None, timeout: float = 30.0) -> None:
        """Block until every named process (default: all) passes its readiness check."""
        deadline = time.monotonic() + timeout
        with self._lock:
            pending = [
                self._processes[n] for n in (names or list(self._processes)) if n in self._processes
            ]
        pending = [m for m in pending if m.spec.ready is not None]
        while pending:
            for managed in list(pending):
                if not managed.running():
                    raise ProcessFailed(
                        f"{managed.spec.name} exited with {managed.popen.returncode} "
                        f"before it was ready; log {managed.log_path}:\n{tail(managed.log_path)}"
                    )
                assert managed.spec.ready is not None
                if managed.spec.ready.check():
                    pending.remove(managed)
            if not pending:
                return
            if time.monotonic() > deadline:
                names_left = ", ".join(
                    f"{m.spec.name} ({m.spec.ready.describe() if m.spec.ready else ''})"
                    for m in pending
                )
                raise ProcessFailed(f"not ready after {timeout:.0f}s: {names_left}")
            time.sleep(0.05)

    def start_all(self, specs: Sequence[ProcessSpec], timeout: float = 30.0) -> None:
        for spec in specs:
            self.start(spec)
        self.wait_ready([s.name for s in specs], timeout=timeout)

    def get(self, name: str) -> Managed:
        return self._processes[name]

    def names(self) -> list[str]:
        with self._lock:
            return list(self._processes)

    def check_alive(self) -> None:
        """Raise if a process died on its own (the demo cannot go on without it)."""
        with self._lock:
            for managed in self._processes.values():
                if not managed.running():
                    raise ProcessFailed(
                        f"{managed.spec.name} exited with {managed.popen.returncode}; "
                        f"log {managed.log_path}:\n{tail(managed.log_path)}"
                    )

    def stop(self, names: Sequence[str]) -> None:
        with self._lock:
            targets = [self._processes.pop(n) for n in names if n in self._processes]
            self._terminate(targets)
            self._write_state()

    def stop_all(self) -> None:
        with self._lock:
            if self._stopped and not self._processes:
                return
            targets = list(self._processes.values())
            self._processes.clear()
            self._terminate(targets)
            self._stopped = True
            self._write_state()

    def _terminate(self, targets: list[Managed]) -> None:
        """SIGTERM every group, wait for the grace period, SIGKILL the rest, reap."""
        if not targets:
            return
        self._signal_groups(targets, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        while time.monotonic() < deadline:
            for managed in targets:
                managed.popen.poll()
            if not any(group_alive(m.pid) for m in targets):
                break
            time.sleep(0.05)
        self._signal_groups(targets, signal.SIGKILL)
        for managed in targets:
            try:
                managed.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # Orphaned grandchildren are reaped by init a moment after SIGKILL.
        poll_until(lambda: not any(group_alive(m.pid) for m in targets), timeout=2.0)

    @staticmethod
    def _signal_groups(targets: list[Managed], signum: int) -> None:
        for managed in targets:
            try:
                os.killpg(managed.pid, signum)  # the leader's pid is the group id
            except (ProcessLookupError, PermissionError):
                pass

    def _write_state(self) -> None:
        state = [
            {"name": m.spec.name, "pid": m.pid, "pgid": m.pid, "log": str(m.log_path)}
            for m in self._processes.values()
        ]
        path = self.workdir / "processes.json"
        try:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1))
            tmp.replace(path)
        except OSError:
            pass


def poll_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Call predicate until it is true or timeout passes; True if it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
