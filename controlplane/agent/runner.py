"""The agent's life: bootstrap, xDS proxy, status ports, Envoy; everything stops together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc

from controlplane.agent.envoy import EnvoyChild
from controlplane.agent.settings import AgentSettings
from controlplane.agent.status import StatusServer
from controlplane.agent.token import TokenFile
from controlplane.agent.xds_proxy import XdsProxy
from controlplane.cli.bootstrap import write_bootstrap
from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap

log = logging.getLogger("controlplane.agent")

SOCKET_NAME = "xds.sock"
BOOTSTRAP_NAME = "envoy-bootstrap.json"
MAX_UNIX_PATH = 107  # sun_path


class AgentError(Exception):
    pass


def bootstrap_params(s: AgentSettings, socket_path: str) -> BootstrapParams:
    """Envoy's bootstrap: xDS over the agent's socket, no credential, no TLS (the socket is
    local and 0600); Envoy keeps its 15090 stats, the agent serves 15021 and 15020."""
    return BootstrapParams(
        kind=s.kind,
        ip=s.ip,
        pod=s.pod,
        namespace=s.namespace,
        service_account=s.service_account,
        workload_name=s.workload_name or s.labels.get("app", s.pod),
        labels=s.labels,
        instance_ips=(s.ip,),
        domain_suffix=s.domain_suffix,
        xds_unix_socket=socket_path,
        delta=s.delta,
        admin_port=s.admin_port,
        stats_port=s.stats_port or None,
        health_port=None,
        listen_host="0.0.0.0" if s.interception == "REDIRECT" else s.ip,
        extra_metadata={"INTERCEPTION_MODE": s.interception},
    )


def _token_source(s: AgentSettings) -> Callable[[], str] | None:
    if s.token_file is not None:
        return TokenFile(s.token_file).read
    if s.token_ca_dir is not None:
        from controlplane.auth import local_token_issuer

        issuer = local_token_issuer(s.token_ca_dir)
        ttl = timedelta(seconds=s.token_ttl_seconds)
        return lambda: issuer.mint(s.namespace, s.service_account, ttl=ttl)
    return None


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        s = settings
        self.socket_path = str(s.workdir / SOCKET_NAME)
        if len(self.socket_path) > MAX_UNIX_PATH:
            raise AgentError(f"xDS socket path {self.socket_path} is longer than {MAX_UNIX_PATH} bytes")
        credentials = None
        if s.root_cert is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=s.root_cert.read_bytes())
        token = _token_source(s)
        owner = (s.envoy_uid, s.envoy_gid if s.envoy_gid is not None else s.envoy_uid) if s.envoy_uid is not None else None
        self.xds = XdsProxy(self.socket_path, (s.xds_host, s.xds_port), credentials, token,
                            server_name=s.xds_server_name, socket_owner=owner)
        app_metrics = (f"http://127.0.0.1:{s.app_metrics_port}{s.app_metrics_path}"
                       if s.app_metrics_port else None)
        self.status = StatusServer(s.admin_port, app_metrics)
        self.envoy = EnvoyChild(s.envoy_binary, s.workdir / BOOTSTRAP_NAME, log_level=s.envoy_log_level,
                                concurrency=s.envoy_concurrency, uid=s.envoy_uid, gid=s.envoy_gid,
                                log_path=s.workdir / "envoy.log")
        self.ports: dict[str, int] = {}
        self._stop = asyncio.Event()

    def _write_bootstrap(self) -> None:
        s = self.settings
        s.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = write_bootstrap(render_bootstrap(bootstrap_params(s, self.socket_path)), s.workdir / BOOTSTRAP_NAME)
        if s.envoy_uid is not None:
            gid = s.envoy_gid if s.envoy_gid is not None else s.envoy_uid
            os.chown(s.workdir, s.envoy_uid, gid)
            os.chown(path, s.envoy_uid, gid)

    async def start(self) -> None:
        s = self.settings
        self._write_bootstrap()
        await self.xds.start()
        ready, status = await self.status.start(s.listen_host, s.ready_port, s.status_port)
        self.ports = {"ready": ready, "status": status}
        self.ports["envoy-pid"] = await self.envoy.start()
        log.info("agent started Envoy (pid %d); readiness on %d, stats on %d",
                 self.ports["envoy-pid"], ready, status)

    async def stop(self) -> None:
        self._stop.set()
        await self.envoy.stop(self.settings.stop_grace_seconds)
        await self.status.stop()
        await self.xds.stop()

    async def run(self) -> int:
        """Until Envoy exits (its status is ours) or SIGTERM/SIGINT (Envoy is stopped first)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        await self.start()
        envoy_exit = asyncio.ensure_future(self.envoy.wait())
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({envoy_exit, stopped}, return_when=asyncio.FIRST_COMPLETED)
            code: Any = envoy_exit.result() if envoy_exit in done else 0
            if envoy_exit in done:
                log.error("Envoy exited with status %s", code)
        finally:
            stopped.cancel()
            await self.stop()
            with contextlib.suppress(asyncio.CancelledError):
                envoy_exit.cancel()
        return int(code or 0)
