"""Processes the rate limit tests start, always stopped: any command (the RLS), and a real
redis-server (Debian's package) on a free loopback port with its own tmp dir. Tests that need
redis-server skip with a reason where it is not installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness.ports import free_port
from tests.harness.processes import stop_process
from tests.harness.wait import wait_for


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; CI installs it)")
    return binary


def _pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


@contextmanager
def running_process(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` started with its output in ``log_path``; terminated (killed if need be) on exit."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            stop_process(process)


@contextmanager
def running_redis(workdir: Path) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a fresh redis-server, stopped on exit."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    with running_process(args, workdir / "redis.log"):
        wait_for(lambda: _pong(port), deadline=15, message="redis-server answering PING")
        yield f"redis://127.0.0.1:{port}/0"
