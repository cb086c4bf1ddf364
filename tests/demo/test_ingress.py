"""The demo's ingress gateway: its config passes analyze (with the Secret the demo writes), and
a real router Envoy, started as the demo starts it, serves productpage over HTTP and over
HTTPS with the Secret's certificate, calling productpage's sidecar with its own SVID."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from controlplane.analysis import analyze_paths
from controlplane.demo.ingress import (
    HOST,
    HTTP_PORT,
    HTTPS_PORT,
    SECRET_FILE,
    start_ingress,
    write_ingress_config,
)
from controlplane.demo.mesh import MeshOptions, start_mesh
from controlplane.demo.supervisor import Supervisor
from controlplane.demo.topology import BASE_DIR, copy_config, load_workloads, reset_config_dir
from tests.gateway.support import common_name, get, https_get
from tests.harness.wait import wait_for


def test_the_ingress_config_passes_analyze_without_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "config"
    copy_config(BASE_DIR, config, "127.0.10")
    ingress = write_ingress_config(config, tmp_path, "127.0.10")
    assert (config / SECRET_FILE).stat().st_mode & 0o077 == 0  # it holds a key
    assert ingress.gateway.address == "127.0.10.40" and ingress.gateway.node_id.startswith("router~")
    report = analyze_paths([config])
    assert report.diagnostics == (), [str(d) for d in report.diagnostics]


@pytest.mark.envoy
@pytest.mark.slow
def test_the_ingress_gateway_serves_productpage_over_http_and_https(tmp_path: Path) -> None:
    # A block of its own, free on the demo's ports (sidecar 9080, app 8080, gateway 8080/8443).
    block = "127.0.62"
    options = MeshOptions(workdir=tmp_path)
    reset_config_dir(options.config_dir)
    copy_config(BASE_DIR, options.config_dir, block)
    workloads = [w for w in load_workloads(options.config_dir) if w.service == "productpage"]
    ingress = write_ingress_config(options.config_dir, tmp_path, block)
    address = ingress.gateway.address
    with Supervisor(tmp_path) as supervisor:
        xds_port = start_mesh(supervisor, workloads, options)
        start_ingress(supervisor, ingress, options, xds_port)
        _, _, body = wait_for(lambda: (r := get(address, HTTP_PORT, "anything", "/productpage"))[0] == 200 and r,
                              message="productpage through the ingress gateway")
        answer = json.loads(body)
        assert answer["service"] == "productpage"
        # mTLS from the gateway to productpage's sidecar: the app saw the gateway's SVID
        assert answer["caller"] == "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"
        assert get(address, HTTP_PORT, "anything", "/admin")[0] == 404
        ctx = ssl.create_default_context(cafile=str(ingress.ca_path))
        _, cert, body = wait_for(lambda: (r := https_get(address, HTTPS_PORT, HOST, ctx, "/productpage"))[0] == 200
                                 and r, message="HTTPS through the ingress gateway")
        assert common_name(cert) == HOST and json.loads(body)["service"] == "productpage"
