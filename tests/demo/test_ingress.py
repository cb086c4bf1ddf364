"""The demo's ingress gateway: its config passes analyze (with the Secret the demo writes), and
a real router Envoy, started as the demo starts it, serves productpage over HTTP and over
HTTPS with the Secret's certificate, calling productpage's sidecar with its own SVID; the
gateway-api phase's Gateway and HTTPRoute reach the same router and route as they say."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from controlplane.analysis import analyze_paths
from controlplane.demo.ingress import (
    GATEWAY_API_PORT,
    HOST,
    HTTP_PORT,
    HTTPS_PORT,
    SECRET_FILE,
    Ingress,
    start_ingress,
    write_ingress_config,
)
from controlplane.demo.mesh import MeshOptions, start_mesh
from controlplane.demo.phases import PHASES
from controlplane.demo.propagation import wait_until_applied
from controlplane.demo.supervisor import Supervisor
from controlplane.demo.topology import BASE_DIR, copy_config, load_workloads, reset_config_dir
from tests.gateway.support import common_name, get, https_get, refused
from tests.harness.wait import wait_for


def test_the_ingress_config_passes_analyze_without_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "config"
    copy_config(BASE_DIR, config, "127.0.10")
    ingress = write_ingress_config(config, tmp_path, "127.0.10")
    assert (config / SECRET_FILE).stat().st_mode & 0o077 == 0  # it holds a key
    assert ingress.gateway.address == "127.0.10.40" and ingress.gateway.node_id.startswith("router~")
    report = analyze_paths([config])
    assert report.diagnostics == (), [str(d) for d in report.diagnostics]


@contextmanager
def _productpage_behind_the_ingress(tmp_path: Path, block: str) -> Iterator[tuple[Ingress, MeshOptions]]:
    """The control plane, productpage (app and sidecar) and the ingress gateway, as the demo
    starts them, on ``block`` (one of its own, free on the demo's ports)."""
    options = MeshOptions(workdir=tmp_path)
    reset_config_dir(options.config_dir)
    copy_config(BASE_DIR, options.config_dir, block)
    workloads = [w for w in load_workloads(options.config_dir) if w.service == "productpage"]
    ingress = write_ingress_config(options.config_dir, tmp_path, block)
    with Supervisor(tmp_path) as supervisor:
        xds_port = start_mesh(supervisor, workloads, options)
        start_ingress(supervisor, ingress, options, xds_port)
        yield ingress, options


@pytest.mark.envoy
@pytest.mark.slow
def test_the_ingress_gateway_serves_productpage_over_http_and_https(tmp_path: Path) -> None:
    with _productpage_behind_the_ingress(tmp_path, "127.0.62") as (ingress, _):
        address = ingress.gateway.address
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


@pytest.mark.envoy
@pytest.mark.slow
def test_the_gateway_api_phase_routes_productpage_through_the_httproute(tmp_path: Path) -> None:
    """The gateway-api phase's Gateway (addresses: the ingress gateway's Service) and HTTPRoute,
    written while the demo's router runs: its listener appears, /productpage reaches productpage
    over the gateway's mTLS, a path or host the HTTPRoute does not list gets 404."""
    block = "127.0.63"
    phase = next(p for p in PHASES if p.key == "gateway-api")
    with _productpage_behind_the_ingress(tmp_path, block) as (ingress, options):
        target = ingress.gateway_api_target()
        assert phase.through_gateway and phase.applies_to(ingress.gateway)
        wait_for(lambda: get(ingress.gateway.address, HTTP_PORT, "anything", "/productpage")[0] == 200,
                 message="the gateway serves its Istio Gateway")
        assert refused(lambda: get(target.connect_host, GATEWAY_API_PORT, HOST, "/productpage"))  # no listener yet
        since = time.monotonic()
        phase.apply(options.config_dir, block)
        assert phase.check is not None
        propagation = wait_until_applied([ingress.gateway], phase.resource, phase.check, since=since, timeout=30)
        assert propagation.complete, propagation
        _, _, body = wait_for(lambda: (r := get(target.connect_host, GATEWAY_API_PORT, HOST, target.path))[0] == 200
                              and r, message="productpage through the Gateway API listener")
        answer = json.loads(body)
        assert answer["service"] == "productpage"
        assert answer["caller"] == "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"
        assert get(target.connect_host, GATEWAY_API_PORT, HOST, "/admin")[0] == 404  # not a path of the HTTPRoute
        assert get(target.connect_host, GATEWAY_API_PORT, "other.demo", "/productpage")[0] == 404  # not its hostname
