"""The reusable harness itself: fixtures, admin API readers, the upstream app."""

from __future__ import annotations

import asyncio
import json

import pytest

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.envoy import http_get
from tests.harness.ports import free_port
from tests.harness.wait import eventually


@pytest.mark.envoy
async def test_fixtures_and_admin_readers(xds_server, envoy_factory, upstream_factory):
    upstream = upstream_factory("echo")
    listen = free_port()
    envoy = envoy_factory(xds_port=xds_server.port, delta=True, name="harness")
    xds_server.cache.set_snapshot(
        envoy.node_id,
        r.snapshot(
            clusters=[r.cluster("echo")],
            endpoints=[r.assignment("echo", [("127.0.0.1", upstream.port)])],
            listeners=[r.http_listener("in", "127.0.0.1", listen, "rc")],
            routes=[r.route_config("rc", [("/", "echo")])],
        ),
    )
    await envoy.until_ready()
    assert await asyncio.to_thread(envoy.active_listener_names) == {"in"}
    assert await asyncio.to_thread(envoy.cluster_hosts, "echo") == [f"127.0.0.1:{upstream.port}"]
    stats = await asyncio.to_thread(envoy.stats)
    assert stats["cluster_manager.cds.update_success"] >= 1
    assert "configs" in await asyncio.to_thread(envoy.config_dump)

    def answered():
        got = http_get("127.0.0.1", listen, "/hello", headers={"x-test": "1"})
        return got if got[0] == 200 else None

    _, headers, body = await eventually(answered, message="request through Envoy")
    echoed = json.loads(body)
    assert headers["x-upstream"] == "echo" and echoed["path"] == "/hello"
    assert echoed["headers"]["x-test"] == "1" and upstream.requests >= 1
    assert xds_server.streams_status()[0]["kind"] == "delta"
    assert xds_server.cache.watcher_count(envoy.node_id) == 1
    assert types.short_name(types.CLUSTER) == "CDS"
