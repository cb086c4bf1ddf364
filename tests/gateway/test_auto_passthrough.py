"""AUTO_PASSTHROUGH through a real Envoy, as Istio's east-west gateway: `controlplane serve` on a
folder, a router bootstrapped by `controlplane bootstrap --kind router` (istio-system, label
``istio: eastwestgateway``) with Istio's ``cross-network-gateway`` (port 15443, TLS,
AUTO_PASSTHROUGH, hosts ``*.local``), and two reviews workloads (v1, v2) behind real sidecars,
STRICT mTLS.

A client holding its own mesh certificate connects to the gateway with the SNI its sidecar would
set, ``outbound_.9080_.<subset>_.reviews.default.svc.cluster.local``: the gateway reads only the
SNI and passes the bytes to that subset's sidecar, so the TLS session is the client's own (the
server certificate is the backend's SVID, the app sees the client's SPIFFE ID). A client
without a certificate is refused by the backend's sidecar, not by the gateway, and an SNI the
gateway has no service for is refused at the gateway.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from controlplane.ca import load_ca_folder
from tests.gateway.support import doc, dump, gateway_envoy, https_get, istio, refused
from tests.harness.control_plane import served_control_plane
from tests.harness.ports import free_address
from tests.harness.wait import wait_for
from tests.mtls.mesh import pod, sidecar, spiffe_id, tls_context
from tests.translate.fast_upstream import FastUpstream

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

PORT, EAST_WEST = 9080, 15443
HOST = "reviews.default.svc.cluster.local"
VERSIONS = {"v1": "127.0.45.1", "v2": "127.0.45.2"}  # subset: the workload's address


def _sni(subset: str = "", host: str = HOST) -> str:
    return f"outbound_.{PORT}_.{subset}_.{host}"


def _reviews(apps: dict[str, FastUpstream]) -> list[dict[str, Any]]:
    """Service reviews with a v1 and a v2 workload, each behind a sidecar; subsets; STRICT."""
    docs = [
        doc("Service", "v1", "reviews", spec={"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": PORT}]}),
        istio("DestinationRule", "reviews", host="reviews", trafficPolicy={"tls": {"mode": "ISTIO_MUTUAL"}},
              subsets=[{"name": v, "labels": {"version": v}} for v in VERSIONS]),
        doc("PeerAuthentication", "security.istio.io/v1", "default", spec={"mtls": {"mode": "STRICT"}}),
        # Istio's samples/multicluster/expose-services.yaml
        istio("Gateway", "cross-network-gateway", "istio-system", selector={"istio": "eastwestgateway"}, servers=[
            {"port": {"number": EAST_WEST, "name": "tls", "protocol": "TLS"}, "tls": {"mode": "AUTO_PASSTHROUGH"},
             "hosts": ["*.local"]}]),
    ]
    for version, address in VERSIONS.items():
        name, labels = f"reviews-{version}", {"app": "reviews", "version": version}
        slice_ = doc("EndpointSlice", "discovery.k8s.io/v1", name, addressType="IPv4",
                     ports=[{"name": "http", "port": PORT}],
                     endpoints=[{"addresses": [address], "targetRef": {"kind": "Pod", "name": f"{name}-0"}}])
        slice_["metadata"]["labels"] = {"kubernetes.io/service-name": "reviews"}
        docs += [
            pod(f"{name}-0", labels, name),
            slice_,
            istio("Sidecar", name, workloadSelector={"labels": labels}, ingress=[{
                "port": {"number": PORT, "protocol": "HTTP", "name": "http"}, "captureMode": "NONE",
                "defaultEndpoint": f"127.0.0.1:{apps[version].port}"}], egress=[{"hosts": ["~/*"]}]),
        ]
    return docs


@pytest.fixture(scope="module")
def east_west(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("auto-passthrough")
    config = workdir / "config"
    config.mkdir()
    address = free_address("127.0.45", (EAST_WEST,))
    with contextlib.ExitStack() as stack:
        apps = {v: stack.enter_context(FastUpstream(f"reviews-{v}")) for v in VERSIONS}
        (config / "mesh.yaml").write_text(dump(_reviews(apps)))
        cp = stack.enter_context(served_control_plane(workdir, config))
        envoys = [
            sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name=f"reviews-{v}", address=a,
                    service_account=f"reviews-{v}", labels={"app": "reviews", "version": v})
            for v, a in VERSIONS.items()
        ]
        envoys.append(gateway_envoy(
            workdir, cp.ca_dir, cp.xds_tls_port, name="eastwestgateway", address=address, namespace="istio-system",
            labels={"istio": "eastwestgateway"}, service_account="istio-eastwestgateway",
        ))
        for envoy in envoys:
            stack.enter_context(envoy)
        for envoy in envoys:
            envoy.wait_ready()
        ca = load_ca_folder(cp.ca_dir, "cluster.local")
        issued = ca.issue_workload("default", "client")
        assert issued.private_key_pem is not None
        yield {"address": address, "envoys": envoys, "ca": ca,
               "client": tls_context(issued.chain_pem, issued.private_key_pem, ca.bundle.pem)}


def _call(east_west: dict[str, Any], sni: str, ctx: ssl.SSLContext | None = None) -> tuple[int, x509.Certificate, bytes]:
    return https_get(east_west["address"], EAST_WEST, sni, ctx or east_west["client"])


def _served(east_west: dict[str, Any], sni: str) -> tuple[int, x509.Certificate, bytes]:
    answer = wait_for(lambda: not refused(lambda: _call(east_west, sni)) and _call(east_west, sni),
                      message=f"a TLS session through the east-west gateway for {sni}")
    assert answer
    return answer


def _uri_sans(cert: x509.Certificate) -> list[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(sans.get_values_for_type(x509.UniformResourceIdentifier))


@pytest.mark.parametrize("version", list(VERSIONS))
def test_the_subset_in_the_sni_reaches_that_subsets_sidecar_with_the_clients_own_mtls(
    east_west: dict[str, Any], version: str
) -> None:
    status, cert, body = _served(east_west, _sni(version))
    assert status == 200
    # The session ends at the backend's sidecar: its SVID, not the gateway's.
    assert _uri_sans(cert) == [spiffe_id(f"reviews-{version}")]
    echo = json.loads(body)
    assert echo["name"] == f"reviews-{version}"
    # The sidecar saw the client's certificate: the gateway did not terminate TLS.
    assert f"URI={spiffe_id('client')}" in echo["headers"]["x-forwarded-client-cert"]


def test_the_sni_without_a_subset_reaches_any_reviews_workload(east_west: dict[str, Any]) -> None:
    seen = set()
    for _ in range(20):
        status, cert, body = _served(east_west, _sni())
        assert status == 200
        seen.add(json.loads(body)["name"])
        assert _uri_sans(cert) == [spiffe_id(json.loads(body)["name"])]
        if len(seen) == len(VERSIONS):
            break
    assert seen == {f"reviews-{v}" for v in VERSIONS}


def test_the_backends_sidecar_refuses_a_client_without_a_mesh_certificate(east_west: dict[str, Any]) -> None:
    _served(east_west, _sni("v1"))  # the path is up
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cadata=east_west["ca"].bundle.pem)
    assert refused(lambda: _call(east_west, _sni("v1"), anonymous))


def test_an_sni_of_no_service_is_refused_at_the_gateway(east_west: dict[str, Any]) -> None:
    _served(east_west, _sni("v1"))
    for sni in (_sni("v1", "ratings.default.svc.cluster.local"), _sni("v3"), "reviews.default.svc.cluster.local"):
        assert refused(lambda: _call(east_west, sni)), sni  # noqa: B023 - called at once

    def plaintext() -> None:  # no TLS, no SNI
        with socket.create_connection((east_west["address"], EAST_WEST), timeout=5) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n")
            if not raw.recv(1024):
                raise ConnectionError("closed without an answer")

    assert refused(plaintext)


def test_every_config_was_accepted(east_west: dict[str, Any]) -> None:
    for envoy in east_west["envoys"]:
        rejected = {k: v for k, v in envoy.stats().items() if k.endswith("update_rejected") and v}
        assert not rejected, (envoy.name, rejected)
