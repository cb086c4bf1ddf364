"""A real Prometheus (Debian's ``prometheus``) for tests: free loopback port, storage in a tmp
folder, always stopped; ``query`` runs PromQL through its HTTP API."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.ports import free_port
from tests.harness.processes import stop_process
from tests.harness.wait import wait_for

PROMETHEUS = "/usr/bin/prometheus"


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (PROMETHEUS if Path(PROMETHEUS).is_file() else None)
    if found is None:
        pytest.skip("prometheus is not installed (Debian package `prometheus`; CI installs it)")
    return found


@dataclass
class RunningPrometheus:
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        """The single value of ``promql``, None when it has no series."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def targets_up(self) -> int:
        return sum(1 for r in self.query("up == 1"))


@contextlib.contextmanager
def running_prometheus(workdir: Path, config: dict[str, Any]) -> Iterator[RunningPrometheus]:
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [binary, f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        server = RunningPrometheus(f"http://127.0.0.1:{port}")
        wait_for(lambda: urllib.request.urlopen(f"{server.url}/-/ready", timeout=2).status == 200,
                 message="prometheus ready")  # fmt: skip
        yield server
    finally:
        stop_process(process)
        log.close()
