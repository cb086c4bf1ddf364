"""pytest fixtures to import into a conftest.py: `from tests.harness.fixtures import *`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.xds import SnapshotCache, XdsServer
from tests.harness.envoy import EnvoyProcess
from tests.harness.upstream import HttpUpstream
from tests.harness.xds_server import running_xds_server

__all__ = ["envoy_factory", "upstream_factory", "xds_server"]


@pytest.fixture
def envoy_factory(tmp_path: Path) -> Iterator[Callable[..., EnvoyProcess]]:
    """make(xds_port=..., delta=False, name="envoy", **BootstrapParams) -> started EnvoyProcess."""
    started: list[EnvoyProcess] = []

    def make(
        *, xds_port: int, delta: bool = False, name: str = "envoy", **params: Any
    ) -> EnvoyProcess:
        envoy = EnvoyProcess.for_xds(
            tmp_path / name, xds_port=xds_port, delta=delta, name=name, **params
        )
        started.append(envoy)
        return envoy.start()

    try:
        yield make
    finally:
        for envoy in started:
            envoy.stop()


@pytest.fixture
def upstream_factory() -> Iterator[Callable[[str], HttpUpstream]]:
    """make(name) -> a started HttpUpstream on 127.0.0.1:<free port>."""
    started: list[HttpUpstream] = []

    def make(name: str) -> HttpUpstream:
        upstream = HttpUpstream(name).start()
        started.append(upstream)
        return upstream

    try:
        yield make
    finally:
        for upstream in started:
            upstream.stop()


@pytest.fixture
async def xds_server() -> AsyncIterator[XdsServer]:
    """An in-process XdsServer on a free port (`xds_server.port`, `xds_server.cache`)."""
    async with running_xds_server(SnapshotCache()) as server:
        yield server
