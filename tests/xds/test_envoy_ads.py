"""A real Envoy against our xDS server, over SotW and delta ADS."""

from __future__ import annotations

import asyncio
import json

import pytest
from google.protobuf import duration_pb2

from controlplane.xds import types
from tests.harness import xds_resources as r
from tests.harness.envoy import EnvoyProcess, http_get
from tests.harness.ports import free_port
from tests.harness.upstream import HttpUpstream
from tests.harness.wait import eventually
from tests.harness.xds_server import running_xds_server

pytestmark = pytest.mark.envoy


def mesh(listen_port: int, routes, endpoints: dict[str, list[tuple[str, int]]], extra_clusters=()):
    return r.snapshot(
        clusters=[r.cluster(name) for name in endpoints] + list(extra_clusters),
        endpoints=[r.assignment(name, eps) for name, eps in endpoints.items()],
        listeners=[r.http_listener("front", "127.0.0.1", listen_port, "front-routes")],
        routes=[r.route_config("front-routes", routes)],
    )


def answered_by(port: int, path: str = "/") -> str | None:
    status, _, body = http_get("127.0.0.1", port, path)
    if status != 200:
        return None
    return json.loads(body)["name"]


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_envoy_gets_config_applies_changes_and_survives_a_nack(tmp_path, delta):
    with HttpUpstream("v1") as v1, HttpUpstream("v2") as v2:
        async with running_xds_server() as xds:
            listen = free_port()
            envoy = EnvoyProcess.for_xds(tmp_path, xds_port=xds.port, delta=delta)
            group = envoy.node_id  # default grouping: one group per node id
            xds.cache.set_snapshot(
                group, mesh(listen, [("/", "svc")], {"svc": [("127.0.0.1", v1.port)]})
            )
            with envoy:
                await envoy.until_ready()
                assert await eventually(lambda: answered_by(listen) == "v1", message="v1 answers")

                # New endpoint set, without restarting Envoy.
                xds.cache.set_resources(
                    group, types.ENDPOINT, [r.assignment("svc", [("127.0.0.1", v2.port)])]
                )
                await eventually(lambda: answered_by(listen) == "v2", message="v2 answers")

                # New route to a new cluster.
                xds.cache.set_snapshot(
                    group,
                    mesh(
                        listen,
                        [("/old", "legacy"), ("/", "svc")],
                        {"svc": [("127.0.0.1", v2.port)], "legacy": [("127.0.0.1", v1.port)]},
                    ),
                )
                await eventually(lambda: answered_by(listen, "/old") == "v1", message="new route")
                assert await asyncio.to_thread(answered_by, listen, "/") == "v2"

                # An invalid cluster: Envoy rejects it, the server records it, traffic flows.
                broken = r.cluster("broken")
                broken.connect_timeout.CopyFrom(duration_pb2.Duration(seconds=-1))
                good_endpoints = {
                    "svc": [("127.0.0.1", v2.port)],
                    "legacy": [("127.0.0.1", v1.port)],
                }
                xds.cache.set_snapshot(
                    group,
                    mesh(listen, [("/old", "legacy"), ("/", "svc")], good_endpoints, [broken]),
                )
                await eventually(
                    lambda: (envoy.stat("cluster_manager.cds.update_rejected") or 0) >= 1,
                    message="CDS rejected",
                )
                nacks = await eventually(
                    lambda: [n for n in xds.recent_nacks() if n.type_url == types.CLUSTER],
                    message="server saw the NACK",
                )
                assert nacks[0].node_id == group
                status = xds.streams_status()[0]
                assert status["types"]["CDS"]["last_nack"]["error"]
                assert xds.counters.nacks_by_type["CDS"] >= 1
                assert await asyncio.to_thread(answered_by, listen, "/old") == "v1"
                assert await asyncio.to_thread(answered_by, listen, "/") == "v2"
                rejected_before = envoy.stat("cluster_manager.cds.update_rejected")

                # Corrected: accepted.
                fixed = r.cluster("broken")
                xds.cache.set_snapshot(
                    group,
                    mesh(listen, [("/old", "legacy"), ("/", "svc")], good_endpoints, [fixed]),
                )
                await eventually(
                    lambda: "broken" in envoy.active_cluster_names(), message="fixed cluster"
                )
                assert envoy.stat("cluster_manager.cds.update_rejected") == rejected_before

                def cds_acked() -> bool:
                    cds = xds.streams_status()[0]["types"]["CDS"]
                    return cds["version_acked"] == cds["version_sent"] and not cds["pending_ack"]

                await eventually(cds_acked, message="server saw the ACK of the fixed cluster")

                # Only svc's endpoints change: a SotW push carries svc's assignment alone, and
                # Envoy keeps the assignments it left out (legacy still has its endpoint).
                eds_pushes = xds.counters.pushes_by_type["EDS"]
                xds.cache.set_snapshot(
                    group,
                    mesh(
                        listen,
                        [("/old", "legacy"), ("/", "svc")],
                        {"svc": [("127.0.0.1", v1.port)], "legacy": [("127.0.0.1", v1.port)]},
                        [fixed],
                    ),
                )
                await eventually(lambda: answered_by(listen) == "v1", message="svc moved to v1")
                assert await asyncio.to_thread(answered_by, listen, "/old") == "v1"
                assert xds.counters.pushes_by_type["EDS"] > eds_pushes
