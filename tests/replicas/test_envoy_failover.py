"""A real Envoy bootstrapped with the addresses of two replicas keeps routing while the one it
talks to dies, reconnects to the other, which serves it the same versions (no reload), and
then follows changes from the survivor."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks.replicas import start_replica
from controlplane.auth import TOKEN_KEY_FILE
from tests.harness.bootstrap import bootstrapped_envoy
from tests.harness.control_plane import ServedControlPlane
from tests.harness.envoy_state import held_versions, xds_counters
from tests.harness.kube_app import (
    CLIENT_IP,
    client_sidecar,
    endpoint_slice,
    reach,
    service,
    virtual_service,
)
from tests.harness.traffic import TrafficLoop
from tests.harness.upstream import HttpUpstream
from tests.harness.wait import wait_for
from tests.replicas.cluster import SERVICES, SIDECARS, SLICES, VIRTUAL_SERVICES, cluster_double

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


def serves(replica: ServedControlPlane, node_id: str) -> bool:
    status, body = replica.get("/debug/syncz")
    return status == 200 and node_id in body


def with_second_xds_address(bootstrap: dict, port: int) -> None:
    """The xds-grpc cluster gets the other replica as a second endpoint, as a Service's
    endpoints would be."""
    cluster = next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "xds-grpc")
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    endpoints.append({"endpoint": {"address": {"socket_address": {
        "address": "127.0.0.1", "port_value": port}}}})  # fmt: skip


def without_secrets(held: dict) -> dict:
    # Each replica issues its own workload certificate (same root): SDS may differ.
    return {key: value for key, value in held.items() if key[0] != "SDS"}


def test_envoy_keeps_routing_through_the_death_of_its_replica(tmp_path: Path) -> None:
    with cluster_double() as kube, ExitStack() as stack:
        upstream = stack.enter_context(HttpUpstream("v1"))
        kube.upsert(SIDECARS, client_sidecar())
        kube.upsert(SERVICES, service("app"))
        kube.upsert(SLICES, endpoint_slice("app", upstream.port))
        kube.upsert(VIRTUAL_SERVICES, virtual_service("before"))
        replicas = [start_replica(stack, tmp_path, kube, i) for i in range(2)]
        envoy = bootstrapped_envoy(tmp_path, replicas[0].ca_dir, replicas[0].xds_tls_port,
                                   "client", address=CLIENT_IP, service_account="client")
        with_second_xds_address(envoy.bootstrap, replicas[1].xds_tls_port)
        # Local tokens are signed with a key of the CA folder; in a cluster every replica checks
        # ServiceAccount tokens with TokenReview instead. Both replicas know the key here.
        shutil.copy2(replicas[0].ca_dir / TOKEN_KEY_FILE, replicas[1].ca_dir / TOKEN_KEY_FILE)
        stack.enter_context(envoy)
        envoy.wait_ready()
        wait_for(lambda: reach("app") == (200, "v1", "before"), message="app through Envoy")
        first = next(i for i in (0, 1) if serves(replicas[i], envoy.node_id))
        other = replicas[1 - first]
        held = without_secrets(held_versions(envoy))
        counters = xds_counters(envoy)

        with TrafficLoop(lambda: reach("app")[0]) as traffic:
            wait_for(lambda: len(traffic.outcomes()) >= 10, message="traffic before")
            replicas[first].kill()
            wait_for(lambda: serves(other, envoy.node_id), message="Envoy on the other replica")
            wait_for(lambda: len(traffic.outcomes()) >= 100, message="traffic after")
        assert traffic.failures() == []

        # The other replica served the versions Envoy already had: nothing was reloaded.
        assert without_secrets(held_versions(envoy)) == held
        now = xds_counters(envoy)
        for name in ("listener_manager.listener_modified", "listener_manager.listener_removed",
                     "cluster_manager.cluster_modified", "cluster_manager.cluster_removed"):
            assert now.get(name) == counters.get(name), name
        assert not any(v for k, v in now.items() if k.endswith(".update_rejected"))

        kube.upsert(VIRTUAL_SERVICES, virtual_service("after"))
        wait_for(lambda: reach("app") == (200, "v1", "after"), message="a change via the survivor")
