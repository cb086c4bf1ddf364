"""A local mesh for the mTLS tests: `controlplane serve` over TLS, and real Envoy sidecars on
loopback addresses, each bootstrapped with a token for its own service account (so its SDS
certificate comes from the runtime's CA).

Each server workload is an app (FastUpstream, echoing the request headers it received)
behind a sidecar whose Sidecar ``ingress`` binds <address>:9080 and forwards to the app.
The client sidecar's egress listener binds <client address>:9080 and routes by Host.
"""

from __future__ import annotations

import http.client
import json
import ssl
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from controlplane.auth import local_token_issuer
from controlplane.ca import load_ca_folder
from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap
from tests.harness.envoy import EnvoyProcess
from tests.harness.ports import free_port

PORT = 9080
NAMESPACE = "default"
TRUST_DOMAIN = "cluster.local"
TLS_MODE_LABEL = "security.istio.io/tlsMode"

# The shared mesh of conftest.py.
CLIENT = "127.0.31.1"
SERVERS = {  # name: (address, service account, PeerAuthentication mode)
    "strict": ("127.0.31.11", "strict", "STRICT"),
    "permissive": ("127.0.31.12", "permissive", None),
    "disabled": ("127.0.31.13", "disabled", "DISABLE"),
}


def spiffe_id(service_account: str, namespace: str = NAMESPACE) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class Workload:
    """A server workload: app ``name`` behind a sidecar at ``address``:9080."""

    name: str
    address: str
    service_account: str
    app_port: int
    mtls_mode: str | None = None  # workload-level PeerAuthentication; None: none (PERMISSIVE)

    @property
    def labels(self) -> dict[str, str]:
        return {"app": self.name}


def _doc(kind: str, api: str, name: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, **body}


def service_docs(name: str, selector: dict[str, str]) -> list[dict[str, Any]]:
    return [_doc("Service", "v1", name, spec={"selector": selector, "ports": [{"name": "http", "port": PORT}]})]


def endpoint_slice(service: str, address: str, port: int, pod: str | None) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"addresses": [address]}
    if pod is not None:
        endpoint["targetRef"] = {"kind": "Pod", "name": pod, "namespace": NAMESPACE}
    body = {"addressType": "IPv4", "ports": [{"name": "http", "port": port}], "endpoints": [endpoint]}
    doc = _doc("EndpointSlice", "discovery.k8s.io/v1", f"{service}-1", **body)
    doc["metadata"]["labels"] = {"kubernetes.io/service-name": service}
    return doc


def pod(name: str, labels: dict[str, str], service_account: str, sidecar: bool = True) -> dict[str, Any]:
    doc = _doc("Pod", "v1", name, spec={"serviceAccountName": service_account})
    doc["metadata"]["labels"] = {**labels, **({TLS_MODE_LABEL: "istio"} if sidecar else {})}
    return doc


def bound_server_docs(
    name: str, address: str, port: int, protocol: str, app_port: int, pod_labels: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Service ``name`` (selector ``app: name``) on ``port`` (HTTP, GRPC or TCP), its Pod and
    EndpointSlice at ``address``, and a Sidecar whose ingress binds it (captureMode NONE) in
    front of the app on 127.0.0.1:``app_port``."""
    port_name = {"HTTP": "http", "GRPC": "grpc", "TCP": "tcp-db"}[protocol]
    selector = {"app": name}
    slice_ = _doc("EndpointSlice", "discovery.k8s.io/v1", f"{name}-1", addressType="IPv4",
                  ports=[{"name": port_name, "port": port}],
                  endpoints=[{"addresses": [address], "targetRef": {"kind": "Pod", "name": f"{name}-0", "namespace": NAMESPACE}}])
    slice_["metadata"]["labels"] = {"kubernetes.io/service-name": name}
    return [
        _doc("Service", "v1", name, spec={"selector": selector, "ports": [{"name": port_name, "port": port}]}),
        pod(f"{name}-0", pod_labels or selector, name),
        slice_,
        _doc("Sidecar", "networking.istio.io/v1", name, spec={
            "workloadSelector": {"labels": selector},
            "ingress": [{"port": {"number": port, "protocol": protocol, "name": port_name},
                         "captureMode": "NONE", "defaultEndpoint": f"127.0.0.1:{app_port}"}],
            "egress": [{"hosts": ["~/*"]}],
        }),
    ]  # fmt: skip


def workload_docs(w: Workload) -> list[dict[str, Any]]:
    docs = service_docs(w.name, w.labels) + [
        pod(f"{w.name}-0", w.labels, w.service_account),
        endpoint_slice(w.name, w.address, PORT, f"{w.name}-0"),
        _doc("Sidecar", "networking.istio.io/v1", w.name, spec={
            "workloadSelector": {"labels": w.labels},
            "ingress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                         "captureMode": "NONE", "defaultEndpoint": f"127.0.0.1:{w.app_port}"}],
            "egress": [{"hosts": ["~/*"]}],
        }),
    ]
    if w.mtls_mode is not None:
        docs.append(_doc("PeerAuthentication", "security.istio.io/v1", w.name, spec={
            "selector": {"matchLabels": w.labels}, "mtls": {"mode": w.mtls_mode},
        }))
    return docs


def client_sidecar_doc(client_address: str) -> dict[str, Any]:
    return _doc("Sidecar", "networking.istio.io/v1", "client", spec={
        "workloadSelector": {"labels": {"app": "client"}},
        "egress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"}, "bind": client_address,
                    "captureMode": "NONE", "hosts": ["./*"]}],
    })


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def sidecar(
    workdir: Path, ca_dir: Path, xds_port: int, *, name: str, address: str, service_account: str,
    labels: dict[str, str],
) -> EnvoyProcess:
    """An Envoy sidecar with a token for ``service_account``, talking xDS over TLS."""
    token = local_token_issuer(ca_dir).mint(NAMESPACE, service_account, ttl=timedelta(hours=1))
    params = BootstrapParams(
        ip=address, pod=f"{name}-0", namespace=NAMESPACE, service_account=service_account,
        workload_name=name, labels=labels, instance_ips=(address,), xds_port=xds_port,
        xds_tls_root_pem=load_ca_folder(ca_dir, TRUST_DOMAIN).bundle.pem, credential_token=token,
        admin_port=free_port(), extra_metadata={"INTERCEPTION_MODE": "NONE"},
    )
    return EnvoyProcess(render_bootstrap(params), workdir, name=name)


# --- clients ---------------------------------------------------------------------------------


def http_request(
    host: str, port: int, *, host_header: str = "", path: str = "/", headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None, timeout: float = 10.0,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One HTTP/1.1 request (over TLS with ``tls``); the app's JSON echo parsed. Raises when
    the connection is refused, reset or closed without an answer."""
    if tls is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)
    try:
        conn.request("GET", path, headers={"host": host_header or host, **(headers or {})})
        response = conn.getresponse()
        body = response.read()
        try:
            echo = json.loads(body)
        except ValueError:
            echo = {}
        return response.status, {k.lower(): v for k, v in response.getheaders()}, echo
    finally:
        conn.close()


def tls_context(chain_pem: str, key_pem: bytes, root_pem: str) -> ssl.SSLContext:
    """A client context presenting a workload certificate and trusting ``root_pem``. SPIFFE
    certificates carry no DNS name, so the host name is not checked (the CA is)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=root_pem)
    with tempfile.TemporaryDirectory() as tmp:
        chain, key = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
        chain.write_text(chain_pem)
        key.write_bytes(key_pem)
        ctx.load_cert_chain(str(chain), str(key))
    return ctx


def refuses(call: Any) -> bool:
    """True when ``call()`` gets no HTTP answer (the peer closed, reset or failed the
    handshake); False when it answered."""
    try:
        call()
    except (OSError, http.client.HTTPException, ssl.SSLError):
        return True
    return False


def xfcc_uri(echo: dict[str, Any]) -> str | None:
    """The ``URI=`` element of the x-forwarded-client-cert header the app received."""
    header = echo.get("headers", {}).get("x-forwarded-client-cert")
    if header is None:
        return None
    for part in header.split(";"):
        key, _, value = part.partition("=")
        if key == "URI":
            return value
    return ""


def cert_serials(envoy: EnvoyProcess) -> set[str]:
    """Serial numbers of the workload certificates Envoy holds (admin /certs)."""
    data = json.loads(envoy.admin("/certs"))
    return {
        chain["serial_number"]
        for entry in data.get("certificates", [])
        for chain in entry.get("cert_chain", [])
        if chain.get("serial_number")
    }
