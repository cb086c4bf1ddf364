"""Run the control plane's xDS server in-process for a test (same event loop).

async with running_xds_server() as xds:
    xds.cache.set_snapshot(...)
    envoy = EnvoyProcess.for_xds(tmp_path, xds_port=xds.port)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from controlplane.xds import SnapshotCache, XdsServer


@asynccontextmanager
async def running_xds_server(
    cache: SnapshotCache | None = None,
    *,
    host: str = "127.0.0.1",
    credentials: grpc.ServerCredentials | None = None,
    **server_kwargs: Any,
) -> AsyncIterator[XdsServer]:
    """Starts an XdsServer on a free port (`server.port`), always stops it."""
    server = XdsServer(cache or SnapshotCache(), **server_kwargs)
    server.port = server.add_port(host, 0, credentials)  # type: ignore[attr-defined]
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=0.5)
