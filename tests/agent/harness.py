"""Run ``controlplane agent`` (and through it Envoy) as a subprocess; always stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from controlplane.auth import local_token_issuer
from tests.harness.envoy import envoy_binary
from tests.harness.ports import free_ports
from tests.harness.wait import wait_for


def write_token(path: Path, ca_dir: Path, namespace: str, service_account: str, ttl_seconds: float = 600) -> str:
    """A fresh local token, written as the kubelet rotates a projected token: a new file
    (mode 0600) renamed over the old one."""
    from datetime import timedelta

    token = local_token_issuer(ca_dir).mint(namespace, service_account, ttl=timedelta(seconds=ttl_seconds))
    staged = path.with_name(f".{path.name}.new")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    os.replace(staged, path)
    return token


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError:
        return 0, ""


@dataclass
class RunningAgent:
    process: subprocess.Popen[bytes]
    workdir: Path
    admin_port: int
    ready_port: int
    status_port: int

    def admin(self, path: str) -> tuple[int, str]:
        return get(f"http://127.0.0.1:{self.admin_port}{path}")

    def ready(self) -> bool:
        return get(f"http://127.0.0.1:{self.ready_port}/healthz/ready")[0] == 200

    def envoy_pids(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children(recursive=True)
                    if "envoy" in c.name()]
        except psutil.NoSuchProcess:
            return []

    def config_dump(self) -> dict[str, Any]:
        status, body = self.admin("/config_dump?include_eds")
        assert status == 200, body
        return json.loads(body)

    def cluster_names(self) -> set[str]:
        status, body = self.admin("/clusters?format=json")
        if status != 200:
            return set()
        return {c["name"] for c in json.loads(body).get("cluster_statuses", [])}

    def log(self) -> str:
        parts = []
        for path in (self.workdir / "agent.log", self.workdir / "proxy" / "envoy.log"):
            if path.exists():
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-6000:])
        return "\n".join(parts)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(self.process.pid).children(recursive=True):
                    child.kill()
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def running_agent(workdir: Path, *, pod: str, namespace: str, service_account: str, ip: str,
                  labels: str, xds_port: int, root_cert: Path, credential: list[str],
                  interception: str = "NONE", extra: tuple[str, ...] = ()) -> Iterator[RunningAgent]:
    """``credential``: ``["--token-file", PATH]`` or ``["--ca-dir", DIR, ...]``."""
    workdir.mkdir(parents=True, exist_ok=True)
    admin, ready, status = free_ports(3)
    with open(workdir / "agent.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "controlplane", "agent", "--pod", pod, "-n", namespace,
             "-s", service_account, "--ip", ip, "--labels", labels,
             "--xds-address", f"127.0.0.1:{xds_port}", "--root-cert", str(root_cert),
             *credential, "--workdir", str(workdir / "proxy"),
             "--envoy-binary", envoy_binary(), "--admin-port", str(admin), "--stats-port", "0",
             "--ready-port", str(ready), "--status-port", str(status), "--listen-host", "127.0.0.1",
             "--interception", interception, "--envoy-log-level", "info", *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    agent = RunningAgent(process, workdir, admin, ready, status)
    try:
        wait_for(lambda: process.poll() is None and agent.ready(), message="agent's Envoy ready", deadline=30)
        yield agent
    except BaseException:
        print(agent.log())
        raise
    finally:
        agent.stop()
