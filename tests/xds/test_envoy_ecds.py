"""A real Envoy gets an HTTP filter's config over ECDS from our xDS server (SotW and delta ADS).

The listener names the config (``config_discovery``, ADS, one type URL, no default); the config
then changes without the listener changing: the next request on an open connection gets it,
and Envoy never updates a listener. Before the config exists the listener does not serve.
"""

from __future__ import annotations

import asyncio
import http.client

import pytest
from envoy.config.core.v3 import config_source_pb2, extension_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.envoy import EnvoyProcess
from tests.harness.ports import free_port
from tests.harness.upstream import HttpUpstream
from tests.harness.wait import eventually
from tests.harness.xds_server import running_xds_server

pytestmark = pytest.mark.envoy

FILTER = "ns.rbac-deny"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"


def listener(port: int) -> listener_pb2.Listener:
    """``front`` on 127.0.0.1:port: RDS routes, and an RBAC filter whose config comes over ECDS."""
    lst = r.http_listener("front", "127.0.0.1", port, "front-routes")
    f = lst.filter_chains[0].filters[0]
    hcm = hcm_pb2.HttpConnectionManager()
    f.typed_config.Unpack(hcm)
    source = config_source_pb2.ExtensionConfigSource(type_urls=[RBAC_TYPE])
    source.config_source.ads.SetInParent()
    source.config_source.resource_api_version = config_source_pb2.V3
    hcm.http_filters.insert(0, hcm_pb2.HttpFilter(name=FILTER, config_discovery=source))
    f.typed_config.Pack(hcm)
    return lst


def deny_paths(*paths: str) -> extension_pb2.TypedExtensionConfig:
    rbac = rbac_pb2.RBAC()
    if paths:
        rbac.rules.action = rbac.rules.DENY
        policy = rbac.rules.policies["deny-paths"]
        for path in paths:
            policy.permissions.add().header.string_match.exact = path
            policy.permissions[-1].header.name = ":path"
        policy.principals.add(any=True)
    out = extension_pb2.TypedExtensionConfig(name=FILTER)
    out.typed_config.Pack(rbac)
    return out


def snapshot(port: int, upstream: int, *configs: extension_pb2.TypedExtensionConfig) -> dict[str, list]:
    snap = r.snapshot(
        clusters=[r.cluster("svc")],
        endpoints=[r.assignment("svc", [("127.0.0.1", upstream)])],
        listeners=[listener(port)],
        routes=[r.route_config("front-routes", [("/", "svc")])],
    )
    snap[types.EXTENSION_CONFIG] = list(configs)
    return snap


class KeepAlive:
    """One HTTP/1.1 connection to Envoy, kept open; fails if Envoy ever closes it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        self.sock = self.conn.sock

    def status(self, path: str) -> int:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        response.read()
        assert not response.will_close and self.conn.sock is self.sock, "Envoy closed the connection"
        return response.status

    def close(self) -> None:
        self.conn.close()


def listener_state(envoy: EnvoyProcess) -> str:
    dump = envoy.config_dump("dynamic_listeners")
    states = {k for entry in dump.get("configs", []) for k in entry if k.endswith("_state")}
    return "warming" if "warming_state" in states else "active" if "active_state" in states else "none"


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_filter_config_changes_over_ecds_without_a_listener_change(tmp_path, delta):
    with HttpUpstream("app") as app:
        async with running_xds_server() as xds:
            port = free_port()
            envoy = EnvoyProcess.for_xds(tmp_path, xds_port=xds.port, delta=delta)
            group = envoy.node_id
            # First start: the listener names a config the server does not have yet.
            xds.cache.set_snapshot(group, snapshot(port, app.port))
            with envoy:
                await eventually(lambda: listener_state(envoy) != "none", message="listener received")
                # It never serves without its config: warming (SotW) or, where delta already
                # told Envoy the config does not exist, active with the filter disabled (500).
                state = listener_state(envoy)
                if state == "active":
                    status, _, _ = await asyncio.to_thread(_get, port, "/x")
                    assert status == 500
                else:
                    assert state == "warming"
                xds.cache.set_snapshot(group, snapshot(port, app.port, deny_paths()))
                await eventually(lambda: listener_state(envoy) == "active", message="listener active")
                await eventually(lambda: _get(port, "/x")[0] == 200, message="config applied")

                conn = await asyncio.to_thread(KeepAlive, port)
                try:
                    assert await asyncio.to_thread(conn.status, "/x") == 200
                    lds = envoy.stat("listener_manager.lds.update_success")
                    # A policy change: only the filter config changes.
                    xds.cache.set_snapshot(group, snapshot(port, app.port, deny_paths("/x")))
                    await eventually(lambda: conn.status("/x") == 403, message="DENY on the open connection")
                    assert await asyncio.to_thread(conn.status, "/y") == 200
                    # A config of a type the filter does not take: Envoy rejects it, keeps the last.
                    wrong = extension_pb2.TypedExtensionConfig(name=FILTER)
                    wrong.typed_config.Pack(hcm_pb2.HttpConnectionManager(stat_prefix="x"))
                    xds.cache.set_snapshot(group, snapshot(port, app.port, wrong))
                    await eventually(
                        lambda: [n for n in xds.recent_nacks() if n.type_url == types.EXTENSION_CONFIG],
                        message="ECDS NACK seen by the server",
                    )
                    assert await asyncio.to_thread(conn.status, "/x") == 403
                    # Corrected: lifted again.
                    xds.cache.set_snapshot(group, snapshot(port, app.port, deny_paths("/z")))
                    await eventually(lambda: conn.status("/x") == 200, message="DENY lifted")
                    assert await asyncio.to_thread(conn.status, "/z") == 403
                    assert envoy.stat("listener_manager.lds.update_success") == lds
                    assert (envoy.stat("listener_manager.total_filter_chains_draining") or 0) == 0
                    assert (envoy.stat(f"extension_config_discovery.http_filter.{FILTER}.config_reload") or 0) >= 3
                    assert (envoy.stat(f"extension_config_discovery.http_filter.{FILTER}.config_fail") or 0) >= 1
                finally:
                    conn.close()
                ecds = envoy.config_dump("ecds_filters")["configs"]
                assert [e["ecds_filter"]["name"] for e in ecds] == [FILTER]


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    from tests.harness.envoy import http_get

    return http_get("127.0.0.1", port, path)
