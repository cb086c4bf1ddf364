"""What the gateway tests share: YAML documents, a gateway Envoy bootstrapped by the
``controlplane bootstrap --kind router`` command, and TLS clients that report the certificate
the server presented."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from tests.harness.envoy import EnvoyProcess
from tests.harness.pki import Pem
from tests.harness.ports import free_port


def doc(kind: str, api: str, name: str, namespace: str = "default", **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, **body}


def istio(kind: str, name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return doc(kind, "networking.istio.io/v1", name, namespace, spec=spec)


def service(name: str, port: int, address: str, target: int, namespace: str = "default",
            port_name: str = "http", selector: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A Service whose one endpoint is ``address:target`` (an app on loopback, no sidecar)."""
    slice_ = doc("EndpointSlice", "discovery.k8s.io/v1", f"{name}-1", namespace, addressType="IPv4",
                 ports=[{"name": port_name, "port": target}], endpoints=[{"addresses": [address]}])
    slice_["metadata"]["labels"] = {"kubernetes.io/service-name": name}
    return [doc("Service", "v1", name, namespace, spec={
        "selector": selector or {"app": name}, "ports": [{"name": port_name, "port": port, "targetPort": target}]}),
        slice_]


def tls_secret(name: str, namespace: str, pem: Pem, ca: bytes | None = None) -> dict[str, Any]:
    data = {"tls.crt": pem.cert, "tls.key": pem.key, **({"ca.crt": ca} if ca else {})}
    return doc("Secret", "v1", name, namespace, type="kubernetes.io/tls",
               data={k: base64.b64encode(v).decode() for k, v in data.items()})


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def gateway_envoy(
    workdir: Path, ca_dir: Path, xds_port: int, *, name: str, address: str, namespace: str,
    labels: dict[str, str], service_account: str,
) -> EnvoyProcess:
    """A router Envoy whose bootstrap comes from ``controlplane bootstrap --kind router`` (a
    token for its service account, xDS over TLS, listeners on its own address)."""
    path = workdir / f"{name}-bootstrap.json"
    subprocess.run(
        [sys.executable, "-m", "controlplane", "bootstrap", "--kind", "router", "-n", namespace,
         "-s", service_account, "--labels", ",".join(f"{k}={v}" for k, v in labels.items()),
         "--ip", address, "--workload", name, "--ca-dir", str(ca_dir),
         "--xds-address", f"127.0.0.1:{xds_port}", "--admin-port", str(free_port()),
         "--stats-port", "0", "--health-port", "0", "--token-ttl", "3600", "-o", str(path)],
        check=True, capture_output=True,
    )
    return EnvoyProcess(json.loads(path.read_text()), workdir, name=name)


def get(address: str, port: int, host: str, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", path, headers={"host": host})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def tls_client(ca: bytes, client: Pem | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca.decode())
    if client is not None:
        with tempfile.TemporaryDirectory() as tmp:
            chain, key = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
            chain.write_bytes(client.cert)
            key.write_bytes(client.key)
            ctx.load_cert_chain(str(chain), str(key))
    return ctx


def https_get(
    address: str, port: int, sni: str, ctx: ssl.SSLContext, path: str = "/"
) -> tuple[int, x509.Certificate, bytes]:
    """One HTTPS request with server name ``sni`` (also the Host); the server's certificate."""
    with socket.create_connection((address, port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        request = f"GET {path} HTTP/1.1\r\nhost: {sni}\r\nconnection: close\r\n\r\n".encode()
        tls.sendall(request)
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, x509.load_der_x509_certificate(der), body


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def refused(call: Any) -> bool:
    """True when ``call()`` gets no answer (handshake failed, reset, closed)."""
    try:
        call()
    except (OSError, ssl.SSLError, http.client.HTTPException, IndexError, ValueError):
        return True
    return False
