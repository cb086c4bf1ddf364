"""Run ``controlplane serve`` as a subprocess on free loopback ports; always stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from controlplane.processes import stop_process
from tests.harness.ports import free_port
from tests.harness.wait import wait_for


@dataclass
class ServedControlPlane:
    process: subprocess.Popen[bytes]
    config_dir: Path
    ca_dir: Path
    log_path: Path
    xds_tls_port: int
    xds_plaintext_port: int
    monitoring_port: int

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.monitoring_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not exit; returns the exit status."""
        return stop_process(self.process)

    def kill(self) -> int:
        """SIGKILL, as a crash or the OOM killer: nothing is shut down; returns the status."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()


@contextmanager
def served_control_plane(
    workdir: Path,
    config_dir: Path,
    *extra: str,
    ports: Mapping[str, int] | None = None,
    log_name: str = "controlplane.log",
    env: Mapping[str, str] | None = None,
) -> Iterator[ServedControlPlane]:
    """``ports`` ("tls", "plain", "monitoring"; free ones if not given) lets a restarted
    control plane come back where its proxies look for it; ``env`` is added to the process's
    environment."""
    ports = dict(ports) if ports is not None else {
        name: free_port() for name in ("tls", "plain", "monitoring")
    }
    log_path = workdir / log_name
    ca_dir = workdir / "ca"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controlplane",
                "serve",
                "--config-dir",
                str(config_dir),
                "--ca-dir",
                str(ca_dir),
                "--xds-tls-port",
                str(ports["tls"]),
                "--xds-plaintext-port",
                str(ports["plain"]),
                "--monitoring-port",
                str(ports["monitoring"]),
                "--debounce-after",
                "0.05",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    served = ServedControlPlane(
        process, config_dir, ca_dir, log_path, ports["tls"], ports["plain"], ports["monitoring"]
    )
    try:
        wait_for(
            lambda: process.poll() is None and served.get("/healthz/ready")[0] == 200,
            message="control plane ready",
        )
        yield served
    except BaseException:
        print(served.log())
        raise
    finally:
        served.stop()
