"""Istio's egress gateway pattern with real Envoy: a client sidecar (REGISTRY_ONLY) calls
``http://edition.example.com`` and reaches an external host (an HTTPS-only loopback server
standing for it) through the egress gateway, which originates TLS by a DestinationRule
(``tls.mode: SIMPLE``, the CA from a Secret of the gateway's namespace):

    ServiceEntry edition.example.com (80 http, 443 https)
    Gateway istio-system/egress (port 80, host edition.example.com) on istio=egressgateway
    VirtualService: mesh -> istio-egressgateway:80; gateway -> edition.example.com:443

A host without a ServiceEntry is refused by the sidecar (REGISTRY_ONLY), and so is
edition.example.com once its ServiceEntry is removed.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.support import doc, dump, gateway_envoy, get, istio, service
from tests.harness.control_plane import served_control_plane
from tests.harness.pki import LocalCA
from tests.harness.ports import free_address
from tests.harness.tls_upstream import TlsUpstream
from tests.harness.wait import wait_for
from tests.mtls.mesh import sidecar

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

EXTERNAL = "edition.example.com"
GATEWAY_NS = "istio-system"
EGRESS_SERVICE = f"istio-egressgateway.{GATEWAY_NS}.svc.cluster.local"


def _config(client: str, gateway: str, backend_port: int, ca: bytes) -> dict[str, list[dict[str, Any]]]:
    return {
        "client.yaml": [istio("Sidecar", "client", workloadSelector={"labels": {"app": "client"}},
                              outboundTrafficPolicy={"mode": "REGISTRY_ONLY"},
                              egress=[{"port": {"number": 80, "protocol": "HTTP", "name": "http"}, "bind": client,
                                       "captureMode": "NONE", "hosts": ["*/*"]}])],
        "egressgateway.yaml": service("istio-egressgateway", 80, gateway, 80, GATEWAY_NS,
                                      selector={"istio": "egressgateway"}) + [
            istio("Gateway", "egress", GATEWAY_NS, selector={"istio": "egressgateway"}, servers=[
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [EXTERNAL]}]),
            doc("Secret", "v1", "edition-ca", GATEWAY_NS, data={"ca.crt": base64.b64encode(ca).decode()}),
        ],
        "routing.yaml": [
            istio("VirtualService", "edition-through-egress", hosts=[EXTERNAL],
                  gateways=[f"{GATEWAY_NS}/egress", "mesh"], http=[
                      {"match": [{"gateways": ["mesh"], "port": 80}],
                       "route": [{"destination": {"host": EGRESS_SERVICE, "port": {"number": 80}}}]},
                      {"match": [{"gateways": [f"{GATEWAY_NS}/egress"], "port": 80}],
                       "route": [{"destination": {"host": EXTERNAL, "port": {"number": 443}}}]}]),
            istio("DestinationRule", "edition-tls", host=EXTERNAL, trafficPolicy={"portLevelSettings": [
                {"port": {"number": 443}, "tls": {"mode": "SIMPLE", "credentialName": "edition-ca", "sni": EXTERNAL}}]}),
        ],
        "service-entry.yaml": [istio("ServiceEntry", "edition", hosts=[EXTERNAL], location="MESH_EXTERNAL",
                                     resolution="STATIC",
                                     ports=[{"number": 80, "name": "http", "protocol": "HTTP"},
                                            {"number": 443, "name": "https", "protocol": "HTTPS"}],
                                     endpoints=[{"address": "127.0.0.1",
                                                 "ports": {"http": backend_port, "https": backend_port}}])],
    }


@pytest.fixture(scope="module")
def egress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("egress")
    config = workdir / "config"
    config.mkdir()
    ca = LocalCA("external-ca")
    client = free_address("127.0.43", (80,))
    gateway_address = free_address("127.0.43", (80,), first=200)
    with contextlib.ExitStack() as stack:
        backend = stack.enter_context(TlsUpstream(workdir, "edition", ca.issue(EXTERNAL, dns=(EXTERNAL,))))
        for name, docs in _config(client, gateway_address, backend.port, ca.pem).items():
            (config / name).write_text(dump(docs))
        cp = stack.enter_context(served_control_plane(workdir, config))
        gateway = stack.enter_context(gateway_envoy(
            workdir, cp.ca_dir, cp.xds_tls_port, name="egressgateway", address=gateway_address, namespace=GATEWAY_NS,
            labels={"istio": "egressgateway"}, service_account="istio-egressgateway",
        ))
        envoy = stack.enter_context(sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="client", address=client,
                                            service_account="client", labels={"app": "client"}))
        gateway.wait_ready()
        envoy.wait_ready()
        yield {"cp": cp, "gateway": gateway, "client": client, "sidecar": envoy, "config": config}


def _rejections(*envoys: Any) -> dict[str, int]:
    return {f"{e.name}:{k}": v for e in envoys for k, v in e.stats().items() if k.endswith("update_rejected") and v}


def test_the_external_host_through_the_egress_gateway_with_tls_origination(egress: dict[str, Any]) -> None:
    client = egress["client"]
    _, _, body = wait_for(lambda: (r := get(client, 80, EXTERNAL))[0] == 200 and r,
                               message="the external host through the egress gateway")
    assert b'"name": "edition"' in body  # the HTTPS-only server answered: TLS was originated
    gateway = egress["gateway"]
    assert (gateway.stat(f"cluster.outbound|443||{EXTERNAL}.upstream_rq_200") or 0) >= 1  # it went through the gateway
    assert (egress["sidecar"].stat(f"cluster.outbound|80||{EGRESS_SERVICE}.upstream_rq_200") or 0) >= 1
    assert not _rejections(gateway, egress["sidecar"])


def test_registry_only_blocks_hosts_without_a_service_entry(egress: dict[str, Any]) -> None:
    client, config = egress["client"], egress["config"]
    wait_for(lambda: get(client, 80, EXTERNAL)[0] == 200, message="the external host")
    assert get(client, 80, "unlisted.example.com")[0] == 502  # BlackHole: no ServiceEntry
    entry = config / "service-entry.yaml"
    saved = entry.read_text()
    entry.unlink()
    try:
        wait_for(lambda: get(client, 80, EXTERNAL)[0] == 502, message="the same call blocked without the ServiceEntry")
    finally:
        entry.write_text(saved)
    wait_for(lambda: get(client, 80, EXTERNAL)[0] == 200, message="allowed again with the ServiceEntry")
    assert not _rejections(egress["gateway"], egress["sidecar"])
