"""Istio's global rate limit task on real Envoy sidecars: EnvoyFilters add Envoy's ratelimit
filter and a virtual host's rate_limits (one EnvoyFilter in the root namespace for every
sidecar) and a cluster to the rate limit service (one per workload), served by
`controlplane serve`; two `controlplane ratelimit` replicas count in one Redis, so the two
sidecars, each asking its own replica, share one limit.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from tests.harness.control_plane import served_control_plane
from tests.harness.ports import free_address, free_port
from tests.harness.wait import wait_for
from tests.mtls.mesh import PORT, Workload, dump, http_request, sidecar, workload_docs
from tests.ratelimit.processes import redis_binary, running_process, running_redis
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

LIMIT = 4
RLS_CONFIG = f"""
domain: mesh-ratelimit
descriptors:
  - key: generic_key
    value: shared
    rate_limit:
      unit: minute
      requests_per_unit: {LIMIT}
"""


def _ef(name: str, ns: str, patches: list[dict[str, Any]], app: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"configPatches": patches}
    if app:
        spec["workloadSelector"] = {"labels": {"app": app}}
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def filter_and_limits() -> dict[str, Any]:
    """Istio's task: the ratelimit filter before the router, rate_limits on the virtual host."""
    return _ef("filter-ratelimit", "istio-system", [
        {"applyTo": "HTTP_FILTER",
         "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {"filter": {
             "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.router"}}}}},
         "patch": {"operation": "INSERT_BEFORE", "value": {
             "name": "envoy.filters.http.ratelimit",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
                              "domain": "mesh-ratelimit", "failure_mode_deny": True, "timeout": "5s",
                              "rate_limit_service": {"grpc_service": {"envoy_grpc": {"cluster_name": "rate_limit_cluster"}},
                                                     "transport_api_version": "V3"}}}}},
        {"applyTo": "VIRTUAL_HOST",
         "match": {"context": "SIDECAR_INBOUND", "routeConfiguration": {"vhost": {"name": f"inbound|http|{PORT}"}}},
         "patch": {"operation": "MERGE", "value": {"rate_limits": [
             {"actions": [{"generic_key": {"descriptor_value": "shared"}}]}]}}},
    ])


def rls_cluster(app: str, port: int) -> dict[str, Any]:
    """A STATIC cluster to this workload's own RLS replica (Istio's task adds one like it)."""
    return _ef(f"ratelimit-cluster-{app}", "default", [{
        "applyTo": "CLUSTER", "match": {"context": "SIDECAR_OUTBOUND"},
        "patch": {"operation": "ADD", "value": {
            "name": "rate_limit_cluster", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "rate_limit_cluster", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}},
    }], app=app)


@contextlib.contextmanager
def rls_process(workdir: Path, config: Path, port: int, redis_url: str, name: str) -> Iterator[None]:
    args = [sys.executable, "-m", "controlplane", "ratelimit", "--config", str(config), "--port", str(port),
            "--redis-url", redis_url]
    with running_process(args, workdir / f"{name}.log"):
        def answers() -> bool:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = rls_pb2_grpc.RateLimitServiceStub(channel)
                stub.ShouldRateLimit(rls_pb2.RateLimitRequest(domain="probe"), timeout=1)
                return True
        wait_for(answers, deadline=20, message=f"{name} answering")
        yield


def test_two_sidecars_share_one_limit_through_rls_and_redis(tmp_path: Path) -> None:
    redis_binary()  # skips with a reason when redis-server is missing
    config = tmp_path / "config"
    config.mkdir()
    rls_config = tmp_path / "ratelimit.yaml"
    rls_config.write_text(RLS_CONFIG)
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(running_redis(tmp_path / "redis"))
        ports = {"a": free_port(), "b": free_port()}
        for app, port in ports.items():
            stack.enter_context(rls_process(tmp_path, rls_config, port, redis_url, f"rls-{app}"))
        apps = {app: stack.enter_context(FastUpstream(app)) for app in ports}
        workloads = {app: Workload(app, free_address("127.0.76", (PORT,)), app, apps[app].port) for app in ports}
        docs = [d for w in workloads.values() for d in workload_docs(w)]
        docs += [filter_and_limits(), *(rls_cluster(app, port) for app, port in ports.items())]
        (config / "mesh.yaml").write_text(dump(docs))
        cp = stack.enter_context(served_control_plane(tmp_path, config))
        envoys = {app: stack.enter_context(sidecar(tmp_path, cp.ca_dir, cp.xds_tls_port, name=app, address=w.address,
                                                   service_account=app, labels={"app": app}))
                  for app, w in workloads.items()}
        for app, envoy in envoys.items():
            envoy.wait_ready()
            wait_for(lambda e=envoy: "envoy.filters.http.ratelimit" in e.admin("/config_dump?resource=dynamic_listeners")
                     and "rate_limit_cluster" in e.active_cluster_names(), message=f"{app} holding the rate limit")

        def get(app: str) -> tuple[int, dict[str, str]]:
            status, headers, _ = http_request(workloads[app].address, PORT, host_header=app)
            return status, headers

        if time.time() % 60 > 45:  # stay within one minute's window
            time.sleep(61 - time.time() % 60)
        statuses = [get(app)[0] for app in ("a", "b", "a", "b")]
        assert statuses == [200] * LIMIT
        for app in ("a", "b"):  # the fifth and sixth requests, whichever sidecar takes them
            status, headers = get(app)
            assert (status, headers.get("x-envoy-ratelimited")) == (429, "true")
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = client.keys("mesh-ratelimit_generic_key_shared_*")
        assert len(keys) == 1 and int(client.get(keys[0])) == LIMIT + 2
        client.close()
        for envoy in envoys.values():
            assert (envoy.stat("listener_manager.lds.update_rejected") or 0) == 0
            assert (envoy.stat("cluster_manager.cds.update_rejected") or 0) == 0
