"""An ingress gateway with real Envoy: `controlplane serve` on a folder, a router Envoy
bootstrapped by `controlplane bootstrap --kind router` (namespace istio-system, label
``istio: ingressgateway``), apps on loopback standing for the Bookinfo services.

- Istio's own bookinfo-gateway.yaml (corpus) routes /productpage to the app, 404 elsewhere;
- HTTPS with SNI serves the Secret's certificate; MUTUAL refuses a client without a
  certificate and accepts one from the ``-cacert`` CA; OPTIONAL_MUTUAL takes a client without
  one and refuses a certificate from another CA; ISTIO_MUTUAL takes a mesh certificate
  and presents the gateway's SVID; PASSTHROUGH reaches a TLS backend untouched (the client
  sees the backend's own certificate); httpsRedirect gives 301;
- an AuthorizationPolicy selecting the gateway denies on its listeners (403);
- a host no VirtualService serves gets 404; a later Gateway's server on a taken port and host
  is dropped, and the control plane logs why;
- a Secret replaced in the folder reaches the gateway without a restart; a gateway in
  another namespace is not given it (and the control plane says why);
- every config is ACKed (no update_rejected).
"""

from __future__ import annotations

import base64
import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from controlplane.ca import load_ca_folder
from tests.gateway.support import (
    common_name,
    doc,
    dump,
    gateway_envoy,
    get,
    https_get,
    istio,
    refused,
    service,
    tls_client,
    tls_secret,
)
from tests.harness.control_plane import served_control_plane
from tests.harness.pki import LocalCA
from tests.harness.ports import free_address
from tests.harness.tls_upstream import TlsUpstream
from tests.harness.upstream import HttpUpstream
from tests.harness.wait import wait_for
from tests.mtls.mesh import tls_context

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "istio" / "samples" / "bookinfo"
BOOKINFO_GATEWAY = CORPUS / "networking" / "bookinfo-gateway.yaml"
HTTP, HTTPS, PASSTHROUGH, REDIRECT, HOSTS, MESH = 8080, 8443, 8444, 8081, 8082, 8445
PORTS = (HTTP, HTTPS, PASSTHROUGH, REDIRECT, HOSTS, MESH)
GATEWAY_NS = "istio-system"
LABELS = {"istio": "ingressgateway"}
WEB, MTLS, TLS_PASS = "bookinfo.example.com", "mtls.example.com", "passthrough.example.com"
OPTIONAL = "optional.example.com"
PARTNERS = "partners.example.com"  # MUTUAL with its CA from caCertCredentialName


def _secure_gateway() -> list[dict[str, Any]]:
    def server(port: int, protocol: str, host: str, name: str, **tls: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"port": {"number": port, "name": name, "protocol": protocol}, "hosts": [host]}
        return {**out, "tls": tls} if tls else out

    return [
        istio("Gateway", "secure", selector=LABELS, servers=[
            server(HTTPS, "HTTPS", WEB, "https-web", mode="SIMPLE", credentialName="web-cert"),
            server(HTTPS, "HTTPS", MTLS, "https-mtls", mode="MUTUAL", credentialName="mtls-cert"),
            server(HTTPS, "HTTPS", OPTIONAL, "https-optional", mode="OPTIONAL_MUTUAL", credentialName="optional-cert"),
            server(HTTPS, "HTTPS", PARTNERS, "https-partners", mode="MUTUAL", credentialName="partners-cert",
                   caCertCredentialName="partner-ca"),
            server(PASSTHROUGH, "TLS", TLS_PASS, "tls-pass", mode="PASSTHROUGH"),
            server(REDIRECT, "HTTP", WEB, "http-redirect", httpsRedirect=True),
            server(HOSTS, "HTTP", "known.example.com", "http-known"),
            server(MESH, "HTTPS", "*", "https-mesh", mode="ISTIO_MUTUAL"),
        ]),
        istio("VirtualService", "secure", hosts=[WEB, MTLS, OPTIONAL, PARTNERS, "known.example.com"], gateways=["secure"],
              http=[{"route": [{"destination": {"host": "productpage", "port": {"number": 9080}}}]}]),
        # a later Gateway claiming the same port and host: dropped (the first by name wins)
        istio("Gateway", "zz-late", selector=LABELS, servers=[
            server(HTTPS, "HTTPS", WEB, "https-late", mode="SIMPLE", credentialName="late-cert")]),
        istio("VirtualService", "passthrough", hosts=[TLS_PASS], gateways=["secure"], tls=[{
            "match": [{"sniHosts": [TLS_PASS], "port": PASSTHROUGH}],
            "route": [{"destination": {"host": "tls-backend", "port": {"number": 9443}}}]}]),
    ]


@pytest.fixture(scope="module")
def ingress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("ingress")
    config = workdir / "config"
    config.mkdir()
    web_ca, client_ca, backend_ca = LocalCA("web-ca"), LocalCA("client-ca"), LocalCA("backend-ca")
    partner_ca = LocalCA("partner-ca")
    address = free_address("127.0.42", PORTS)
    with contextlib.ExitStack() as stack:
        app = stack.enter_context(HttpUpstream("productpage"))
        backend = stack.enter_context(TlsUpstream(workdir, "tls-backend", backend_ca.issue(TLS_PASS, dns=(TLS_PASS,))))
        corpus = [d for d in yaml.safe_load_all(BOOKINFO_GATEWAY.read_text()) if d]
        (config / "bookinfo-gateway.yaml").write_text(dump(corpus))
        (config / "apps.yaml").write_text(dump(
            service("productpage", 9080, "127.0.0.1", app.port)
            + service("tls-backend", 9443, "127.0.0.1", backend.port, port_name="tls")
        ))
        (config / "secure.yaml").write_text(dump(_secure_gateway()))
        (config / "authz.yaml").write_text(dump([doc(
            "AuthorizationPolicy", "security.istio.io/v1", "ingress-deny", GATEWAY_NS, spec={
                "selector": {"matchLabels": LABELS}, "action": "DENY",
                # the port keeps it off the TCP chains, which Istio's DENY would close whole
                "rules": [{"to": [{"operation": {"ports": [str(HTTP)], "paths": ["/static/secret*"]}}]}]})]))
        (config / "secrets.yaml").write_text(dump([
            tls_secret("web-cert", GATEWAY_NS, web_ca.issue(WEB, dns=(WEB,))),
            tls_secret("mtls-cert", GATEWAY_NS, web_ca.issue(MTLS, dns=(MTLS,)), ca=client_ca.pem),
            tls_secret("optional-cert", GATEWAY_NS, web_ca.issue(OPTIONAL, dns=(OPTIONAL,)), ca=client_ca.pem),
            tls_secret("partners-cert", GATEWAY_NS, web_ca.issue(PARTNERS, dns=(PARTNERS,))),
            doc("Secret", "v1", "partner-ca", GATEWAY_NS, data={"ca.crt": base64.b64encode(partner_ca.pem).decode()}),
        ]))
        cp = stack.enter_context(served_control_plane(workdir, config))
        gateway = stack.enter_context(gateway_envoy(
            workdir, cp.ca_dir, cp.xds_tls_port, name="ingressgateway", address=address, namespace=GATEWAY_NS,
            labels=LABELS, service_account="istio-ingressgateway",
        ))
        gateway.wait_ready()
        yield {"cp": cp, "gateway": gateway, "address": address, "config": config, "workdir": workdir,
               "web_ca": web_ca, "client_ca": client_ca, "backend_ca": backend_ca, "partner_ca": partner_ca,
               "app": app}


def _no_rejections(envoy: Any) -> None:
    stats = envoy.stats()
    rejected = {k: v for k, v in stats.items() if k.endswith("update_rejected") and v}
    assert not rejected, rejected


def test_bookinfo_gateway_routes_productpage(ingress: dict[str, Any]) -> None:
    address = ingress["address"]
    status, headers, _ = wait_for(
        lambda: (r := get(address, HTTP, "bookinfo.anywhere", "/productpage"))[0] == 200 and r,
        message="productpage through the gateway",
    )
    assert headers["x-upstream"] == "productpage"
    assert get(address, HTTP, "bookinfo.anywhere", "/static/app.css")[0] == 200
    assert get(address, HTTP, "bookinfo.anywhere", "/admin")[0] == 404  # no route of the VirtualService
    # an AuthorizationPolicy selecting the gateway applies on its listeners
    status, _, body = get(address, HTTP, "bookinfo.anywhere", "/static/secret.txt")
    assert (status, body) == (403, b"RBAC: access denied")
    listeners = ingress["gateway"].active_listener_names()
    assert {f"0.0.0.0_{p}" for p in PORTS} <= listeners
    _no_rejections(ingress["gateway"])


def test_a_host_no_virtual_service_serves_gets_404(ingress: dict[str, Any]) -> None:
    address = ingress["address"]
    wait_for(lambda: get(address, HOSTS, "known.example.com")[0] == 200, message="the known host")
    assert get(address, HOSTS, "unknown.example.com")[0] == 404


def test_https_serves_the_secret_certificate(ingress: dict[str, Any]) -> None:
    ctx = tls_client(ingress["web_ca"].pem)
    status, cert, body = wait_for(
        lambda: not refused(lambda: https_get(ingress["address"], HTTPS, WEB, ctx)) and https_get(
            ingress["address"], HTTPS, WEB, ctx),
        message="HTTPS through the gateway",
    )
    assert status == 200 and common_name(cert) == WEB
    assert b'"name": "productpage"' in body


def test_a_conflicting_server_is_dropped_and_logged(ingress: dict[str, Any]) -> None:
    expected = ("Gateway default/zz-late spec.servers[0] (port 8443): duplicate TLS host names on the port: "
                "bookinfo.example.com (claimed by default/secure); the server is dropped")
    wait_for(lambda: expected in ingress["cp"].log(), message="the conflict logged")
    ctx = tls_client(ingress["web_ca"].pem)
    wait_for(lambda: not refused(lambda: https_get(ingress["address"], HTTPS, WEB, ctx)), message="HTTPS up")
    assert common_name(https_get(ingress["address"], HTTPS, WEB, ctx)[1]) == WEB  # the first Gateway's certificate
    assert "late-cert" not in ingress["cp"].log()  # never asked for


def test_mutual_needs_a_client_certificate_from_the_cacert(ingress: dict[str, Any]) -> None:
    address = ingress["address"]
    good = tls_client(ingress["web_ca"].pem, ingress["client_ca"].issue("client-one", server=False))
    status, cert, _ = wait_for(
        lambda: not refused(lambda: https_get(address, HTTPS, MTLS, good)) and https_get(address, HTTPS, MTLS, good),
        message="MUTUAL with a client certificate",
    )
    assert status == 200 and common_name(cert) == MTLS
    assert refused(lambda: https_get(address, HTTPS, MTLS, tls_client(ingress["web_ca"].pem)))
    stranger = tls_client(ingress["web_ca"].pem, LocalCA("other-ca").issue("intruder", server=False))
    assert refused(lambda: https_get(address, HTTPS, MTLS, stranger))


def test_mutual_checks_clients_against_the_ca_cert_credential(ingress: dict[str, Any]) -> None:
    """caCertCredentialName names the CA apart from the server's certificate (which has none)."""
    address, web_ca = ingress["address"], ingress["web_ca"].pem
    partner = tls_client(web_ca, ingress["partner_ca"].issue("partner-one", server=False))
    status, cert, _ = wait_for(
        lambda: not refused(lambda: https_get(address, HTTPS, PARTNERS, partner))
        and https_get(address, HTTPS, PARTNERS, partner),
        message="MUTUAL with a certificate from the caCertCredentialName CA",
    )
    assert status == 200 and common_name(cert) == PARTNERS
    assert refused(lambda: https_get(address, HTTPS, PARTNERS, tls_client(web_ca)))
    other = tls_client(web_ca, ingress["client_ca"].issue("client-three", server=False))
    assert refused(lambda: https_get(address, HTTPS, PARTNERS, other))


def test_optional_mutual_takes_a_client_without_a_certificate_but_checks_one_given(ingress: dict[str, Any]) -> None:
    address, web_ca = ingress["address"], ingress["web_ca"].pem
    anonymous = tls_client(web_ca)
    status, cert, _ = wait_for(
        lambda: not refused(lambda: https_get(address, HTTPS, OPTIONAL, anonymous))
        and https_get(address, HTTPS, OPTIONAL, anonymous),
        message="OPTIONAL_MUTUAL without a client certificate",
    )
    assert status == 200 and common_name(cert) == OPTIONAL
    good = tls_client(web_ca, ingress["client_ca"].issue("client-two", server=False))
    assert https_get(address, HTTPS, OPTIONAL, good)[0] == 200
    stranger = tls_client(web_ca, LocalCA("other-ca").issue("intruder", server=False))
    assert refused(lambda: https_get(address, HTTPS, OPTIONAL, stranger))


def test_istio_mutual_takes_a_mesh_certificate(ingress: dict[str, Any]) -> None:
    address = ingress["address"]
    ca = load_ca_folder(ingress["cp"].ca_dir, "cluster.local")
    issued = ca.issue_workload("default", "client")
    mesh = tls_context(issued.chain_pem, issued.private_key_pem, ca.bundle.pem)
    status, cert, _ = wait_for(
        lambda: not refused(lambda: https_get(address, MESH, WEB, mesh)) and https_get(address, MESH, WEB, mesh),
        message="ISTIO_MUTUAL with a mesh certificate",
    )
    assert status == 200
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"  # the gateway's own SVID
    ]
    plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    plain.check_hostname = False
    plain.load_verify_locations(cadata=ca.bundle.pem)
    assert refused(lambda: https_get(address, MESH, WEB, plain))  # no client certificate


def test_passthrough_reaches_the_tls_backend_untouched(ingress: dict[str, Any]) -> None:
    ctx = tls_client(ingress["backend_ca"].pem)
    address = ingress["address"]
    status, cert, body = wait_for(
        lambda: not refused(lambda: https_get(address, PASSTHROUGH, TLS_PASS, ctx))
        and https_get(address, PASSTHROUGH, TLS_PASS, ctx),
        message="TLS passthrough",
    )
    assert status == 200 and b"tls-backend" in body
    assert cert.issuer == ingress["backend_ca"].cert.subject  # the backend's own certificate
    assert refused(lambda: https_get(address, PASSTHROUGH, "other.example.com", ctx))  # no chain for that SNI


def test_https_redirect_gives_301(ingress: dict[str, Any]) -> None:
    _, headers, _ = wait_for(
        lambda: (r := get(ingress["address"], REDIRECT, WEB, "/productpage"))[0] == 301 and r,
        message="the redirect",
    )
    assert headers["location"] == f"https://{WEB}/productpage"


def test_a_replaced_secret_reaches_the_gateway_without_a_restart(ingress: dict[str, Any]) -> None:
    address, config = ingress["address"], ingress["config"]
    ctx = tls_client(ingress["web_ca"].pem)
    wait_for(lambda: not refused(lambda: https_get(address, HTTPS, WEB, ctx)), message="HTTPS up")
    before = https_get(address, HTTPS, WEB, ctx)[1].serial_number
    pid = ingress["gateway"].process.pid
    renewed = ingress["web_ca"].issue(WEB, dns=(WEB,))
    docs = list(yaml.safe_load_all((config / "secrets.yaml").read_text()))
    docs[0] = tls_secret("web-cert", GATEWAY_NS, renewed)
    (config / "secrets.yaml").write_text(dump(docs))
    wait_for(lambda: https_get(address, HTTPS, WEB, ctx)[1].serial_number != before, message="the new certificate")
    assert ingress["gateway"].process.pid == pid and ingress["gateway"].alive()
    _no_rejections(ingress["gateway"])


def test_a_gateway_in_another_namespace_cannot_read_the_secret(ingress: dict[str, Any]) -> None:
    cp, workdir = ingress["cp"], ingress["workdir"]
    address = free_address("127.0.42", PORTS)
    with gateway_envoy(
        workdir, cp.ca_dir, cp.xds_tls_port, name="other-gateway", address=address, namespace="other",
        labels=LABELS, service_account="istio-ingressgateway",
    ) as other:
        wait_for(lambda: get(address, HTTP, "x", "/productpage")[0] == 200, message="the other gateway's HTTP")
        wait_for(lambda: "Secret other/web-cert: not found" in cp.log(), message="the refusal logged")
        ctx = tls_client(ingress["web_ca"].pem)
        assert refused(lambda: https_get(address, HTTPS, WEB, ctx))  # no certificate to serve
        dump_ = other.config_dump()
        secrets = [c for c in dump_["configs"] if c["@type"].endswith("SecretsConfigDump")]
        served = {s["name"] for c in secrets for s in c.get("dynamic_active_secrets", [])}
        assert "kubernetes://web-cert" not in served
        _no_rejections(other)
