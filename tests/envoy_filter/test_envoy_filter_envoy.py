"""EnvoyFilters applied to real Envoy sidecars by `controlplane serve` (Istio's EnvoyFilter
semantics): Istio's local rate limit task, a Lua filter, a REMOVE, and a bad patch that is
reported while everything else keeps working.

Topology (module scope): the workload ``api`` (an app echoing its request) behind its sidecar
at 127.0.75.N:9080 (Sidecar ingress, captureMode NONE, PERMISSIVE); a ``client`` sidecar whose
egress listener binds 127.0.75.M:9080 and routes by Host to ``api`` over mTLS. Each test writes
its EnvoyFilters into the watched folder and waits until the sidecar holds them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.envoy import EnvoyProcess
from tests.harness.ports import free_address
from tests.harness.wait import wait_for
from tests.mtls.mesh import (
    PORT,
    Workload,
    client_sidecar_doc,
    dump,
    http_request,
    pod,
    sidecar,
    workload_docs,
)
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

API = free_address("127.0.75", (PORT,))
CLIENT = free_address("127.0.75", (PORT,))
ROUTER = {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager",
                                     "subFilter": {"name": "envoy.filters.http.router"}}}}


def envoy_filter(name: str, patches: list[dict[str, Any]], *, app: str = "api", ns: str = "default",
                 priority: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"workloadSelector": {"labels": {"app": app}}, "configPatches": patches}
    if priority is not None:
        spec["priority"] = priority
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def lua_response_header(header: str, value: str, context: str = "SIDECAR_INBOUND") -> dict[str, Any]:
    return {"applyTo": "HTTP_FILTER", "match": {"context": context, "listener": ROUTER},
            "patch": {"operation": "INSERT_BEFORE", "value": {
                "name": "envoy.filters.http.lua",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                    "inline_code": f'function envoy_on_response(h) h:headers():add("{header}", "{value}") end'}}}}


def local_rate_limit(tokens: int, fill: str) -> dict[str, Any]:
    """Istio's local rate limit task (samples/ratelimit/local-rate-limit-service.yaml), for api:
    a per-route bucket for /productpage of ``tokens`` per ``fill``."""
    doc = envoy_filter("filter-local-ratelimit-svc", [
        {"applyTo": "HTTP_FILTER",
         "match": {"context": "SIDECAR_INBOUND",
                   "listener": {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}}},
         "patch": {"operation": "INSERT_BEFORE", "value": {
             "name": "envoy.filters.http.local_ratelimit",
             "typed_config": {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                              "type_url": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                              "value": {"stat_prefix": "http_local_rate_limiter"}}}}},
        {"applyTo": "HTTP_ROUTE",
         "match": {"context": "SIDECAR_INBOUND",
                   "routeConfiguration": {"vhost": {"name": f"inbound|http|{PORT}", "route": {"action": "ANY"}}}},
         "patch": {"operation": "MERGE", "value": {
             "route": {"rate_limits": [
                 {"actions": [{"remote_address": {}}]},
                 {"actions": [{"header_value_match": {
                     "descriptor_value": "productpage", "expect_match": True,
                     "headers": [{"name": ":path", "string_match": {"prefix": "/productpage", "ignore_case": True}}]}}]}]},
             "typed_per_filter_config": {"envoy.filters.http.local_ratelimit": {
                 "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                 "stat_prefix": "test_enabled",
                 "token_bucket": {"max_tokens": 1000, "tokens_per_fill": 1000, "fill_interval": "60s"},
                 "filter_enabled": {"runtime_key": "test_enabled", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                 "filter_enforced": {"runtime_key": "test_enabled", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                 "response_headers_to_add": [{"append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                                              "header": {"key": "x-local-rate-limit", "value": "true"}}],
                 "descriptors": [{"entries": [{"key": "header_match", "value": "productpage"}],
                                  "token_bucket": {"max_tokens": tokens, "tokens_per_fill": tokens, "fill_interval": fill}}]}}}}},
    ], ns="istio-system")
    return doc


@dataclass
class Mesh:
    cp: ServedControlPlane
    config: Path
    api: EnvoyProcess
    client: EnvoyProcess

    def apply(self, docs: list[dict[str, Any]], *, holds: str | None = None, proxy: str = "api") -> None:
        """Write ``docs`` as the EnvoyFilters; wait until ``proxy``'s config_dump shows ``holds``."""
        (self.config / "envoy-filters.yaml").write_text(dump(docs) if docs else "")
        envoy = self.api if proxy == "api" else self.client
        if holds is not None:
            wait_for(lambda: holds in _active_config(envoy), message=f"{proxy} holding {holds!r}")
        wait_for(lambda: envoy.stat("listener_manager.total_filter_chains_draining") == 0,
                 message="old filter chains drained")

    def rejected(self) -> int:
        return sum(e.stat(f"{t}.update_rejected") or 0 for e in (self.api, self.client)
                   for t in ("listener_manager.lds", "cluster_manager.cds"))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir: Path = tmp_path_factory.mktemp("envoy_filter")
    config = workdir / "config"
    config.mkdir()
    with contextlib.ExitStack() as stack:
        app = stack.enter_context(FastUpstream("api"))
        api = Workload("api", API, "api", app.port)
        (config / "mesh.yaml").write_text(dump([
            *workload_docs(api), pod("client-0", {"app": "client"}, "client"), client_sidecar_doc(CLIENT),
        ]))
        cp = stack.enter_context(served_control_plane(workdir, config))
        api_envoy = stack.enter_context(sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="api", address=API,
                                                service_account="api", labels={"app": "api"}))
        client_envoy = stack.enter_context(sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="client",
                                                   address=CLIENT, service_account="client",
                                                   labels={"app": "client"}))
        api_envoy.wait_ready()
        client_envoy.wait_ready()
        wait_for(lambda: http_request(API, PORT, host_header="api")[0] == 200, message="api through its sidecar")
        wait_for(lambda: http_request(CLIENT, PORT, host_header="api")[0] == 200, message="client -> api")
        yield Mesh(cp, config, api_envoy, client_envoy)


def test_local_rate_limit_429_then_refill(mesh: Mesh) -> None:
    mesh.apply([local_rate_limit(3, "2s")], holds="envoy.filters.http.local_ratelimit")
    statuses = [http_request(API, PORT, host_header="api", path="/productpage")[0] for _ in range(6)]
    assert statuses.count(200) <= 3 and statuses[-1] == 429, statuses  # 3 tokens, then empty
    status, headers, _ = http_request(API, PORT, host_header="api", path="/productpage")
    assert status == 429 and headers.get("x-local-rate-limit") == "true"
    # Other paths use the route's default bucket (1000 a minute).
    assert http_request(API, PORT, host_header="api", path="/reviews")[0] == 200
    time.sleep(2.2)  # one fill interval
    assert http_request(API, PORT, host_header="api", path="/productpage")[0] == 200
    assert mesh.rejected() == 0


def test_lua_filter_adds_a_response_header(mesh: Mesh) -> None:
    mesh.apply([envoy_filter("lua", [lua_response_header("x-lua", "hello")])], holds="x-lua")
    status, headers, _ = http_request(API, PORT, host_header="api")
    assert (status, headers.get("x-lua")) == (200, "hello")
    # What the control plane serves (proxy-config reads it) is the patched config too.
    code, body = mesh.cp.get("/debug/config_dump?proxyID=api-0.default")
    assert code == 200 and "x-lua" in body
    assert mesh.rejected() == 0


def test_extension_config_added_and_served_over_ecds(mesh: Mesh) -> None:
    lua = lua_response_header("x-ecds", "served")["patch"]["value"]
    mesh.apply([envoy_filter("ecds", [
        {"applyTo": "EXTENSION_CONFIG", "patch": {"operation": "ADD", "value": {
            "name": "default.lua-ecds", "typed_config": lua["typed_config"]}}},
        {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": ROUTER},
         "patch": {"operation": "INSERT_BEFORE", "value": {"name": "default.lua-ecds", "config_discovery": {
             "config_source": {"ads": {}, "resource_api_version": "V3"},
             "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"]}}}},
    ])], holds="default.lua-ecds")
    wait_for(lambda: http_request(API, PORT, host_header="api")[1].get("x-ecds") == "served",
             message="the ECDS filter answering")
    assert mesh.rejected() == 0


def test_remove_drops_the_fault_filter(mesh: Mesh) -> None:
    fault = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "api-fault", "namespace": "default"},
             "spec": {"hosts": ["api"], "http": [{"fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
                                                  "route": [{"destination": {"host": "api"}}]}]}}
    mesh.apply([fault], holds="envoy.filters.http.fault", proxy="client")
    wait_for(lambda: http_request(CLIENT, PORT, host_header="api")[0] == 418, message="the fault aborts")
    remove = envoy_filter("no-fault", [{
        "applyTo": "HTTP_FILTER",
        "match": {"context": "SIDECAR_OUTBOUND", "listener": {"filterChain": {"filter": {
            "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.fault"}}}}},
        "patch": {"operation": "REMOVE"}}], app="client")
    mesh.apply([fault, remove], proxy="client")
    wait_for(lambda: "envoy.filters.http.fault" not in _listener_dump(mesh.client), message="fault filter gone")
    wait_for(lambda: http_request(CLIENT, PORT, host_header="api")[0] == 200, message="no fault without its filter")
    assert mesh.rejected() == 0


def test_bad_patch_is_reported_and_the_rest_is_intact(mesh: Mesh) -> None:
    broken = envoy_filter("broken", [
        # ADD appends after the router: Envoy would refuse the listener.
        {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": ROUTER},
         "patch": {"operation": "ADD", "value": lua_response_header("x-late", "1")["patch"]["value"]}},
        lua_response_header("x-good", "yes"),
    ])
    mesh.apply([broken], holds="x-good")
    status, headers, _ = http_request(API, PORT, host_header="api")
    assert status == 200 and headers.get("x-good") == "yes" and "x-late" not in headers
    assert http_request(CLIENT, PORT, host_header="api")[0] == 200  # the client's config is untouched
    _, configz = mesh.cp.get("/debug/configz")
    errors = json.loads(configz)["errors"]
    assert any("EnvoyFilter default/broken: spec.configPatches[0]" in e and "router" in e for e in errors), errors
    _, metrics = mesh.cp.get("/metrics")
    assert 'pilot_envoy_filter_status{name="default/broken",result="error"} 1.0' in metrics
    assert "EnvoyFilter default/broken: spec.configPatches[0]" in mesh.cp.log()
    assert mesh.rejected() == 0


def _listener_dump(envoy: EnvoyProcess) -> str:
    return envoy.admin("/config_dump?resource=dynamic_listeners")


def _active_config(envoy: EnvoyProcess) -> str:
    """The listeners and clusters Envoy serves with (none warming), as JSON text."""
    listeners = json.loads(_listener_dump(envoy)).get("configs", [])
    if any("warming_state" in entry for entry in listeners):
        return ""
    return json.dumps([entry.get("active_state", {}) for entry in listeners]) + envoy.admin(
        "/config_dump?resource=dynamic_active_clusters")
