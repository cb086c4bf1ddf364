"""Istio's local rate limit sample (samples/ratelimit/local-rate-limit-service.yaml), its YAML
unchanged, on a real Envoy sidecar: the productpage workload serving port 8000 (the sample's
virtual host ``inbound|http|8000``) gets 10 requests a minute on /productpage, then 429 with
``x-local-rate-limit: true``; other paths share the route's 100 a minute."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.harness.control_plane import served_control_plane
from tests.harness.ports import free_address
from tests.harness.wait import wait_for
from tests.mtls.mesh import dump, endpoint_slice, http_request, pod, sidecar
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SAMPLE = Path("/work/shared/conformance/istio/samples-more/ratelimit/local-rate-limit-service.yaml")
PORT = 8000
ADDRESS = free_address("127.0.77", (PORT,))


def _productpage(app_port: int) -> list[dict[str, Any]]:
    labels = {"app": "productpage"}
    slice_ = endpoint_slice("productpage", ADDRESS, PORT, "productpage-0")
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "productpage", "namespace": "default"},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": PORT}]}},
        pod("productpage-0", labels, "bookinfo-productpage"),
        slice_,
        {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
         "metadata": {"name": "productpage", "namespace": "default"},
         "spec": {"workloadSelector": {"labels": labels},
                  "ingress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"}, "captureMode": "NONE",
                               "defaultEndpoint": f"127.0.0.1:{app_port}"}],
                  "egress": [{"hosts": ["~/*"]}]}},
    ]


def test_istio_local_rate_limit_sample_unchanged(tmp_path: Path) -> None:
    if not SAMPLE.is_file():
        pytest.skip("the conformance corpus is not here")
    config = tmp_path / "config"
    config.mkdir()
    with contextlib.ExitStack() as stack:
        app = stack.enter_context(FastUpstream("productpage"))
        (config / "mesh.yaml").write_text(dump(_productpage(app.port)))
        shutil.copy(SAMPLE, config / "local-rate-limit-service.yaml")  # as Istio ships it
        cp = stack.enter_context(served_control_plane(tmp_path, config))
        envoy = stack.enter_context(sidecar(tmp_path, cp.ca_dir, cp.xds_tls_port, name="productpage",
                                            address=ADDRESS, service_account="bookinfo-productpage",
                                            labels={"app": "productpage"}))
        envoy.wait_ready()
        wait_for(lambda: "header_match" in envoy.admin("/config_dump?resource=dynamic_listeners"),
                 message="the sample's route rate limits on the sidecar")
        wait_for(lambda: http_request(ADDRESS, PORT, host_header="productpage", path="/")[0] == 200,
                 message="productpage through its sidecar")
        statuses = [http_request(ADDRESS, PORT, host_header="productpage", path="/productpage")[0]
                    for _ in range(11)]
        assert statuses == [200] * 10 + [429], statuses
        status, headers, _ = http_request(ADDRESS, PORT, host_header="productpage", path="/productpage")
        assert (status, headers.get("x-local-rate-limit")) == (429, "true")
        assert http_request(ADDRESS, PORT, host_header="productpage", path="/reviews")[0] == 200
        assert (envoy.stat("listener_manager.lds.update_rejected") or 0) == 0
        assert not json.loads(cp.get("/debug/configz")[1])["errors"]  # no problem reported
