"""The demo's ingress gateway: traffic from outside the mesh enters at a router Envoy on its
own loopback address (``config/ingress/``: 127.0.10.40, HTTP 8080 and HTTPS 8443), as Istio's
Bookinfo is reached through its ingress gateway.

The HTTPS certificate comes from a Kubernetes Secret of the gateway's namespace written into
the watched folder at start (a fresh CA and a certificate for ``bookinfo.demo``: no key is
kept in the repository); the CA is written beside it in the work folder for clients.

The gateway-api phase adds a Kubernetes Gateway API Gateway served by the same router (its
``addresses`` name the gateway's Service) on ``GATEWAY_API_PORT``, and an HTTPRoute.
"""

from __future__ import annotations

import base64
import datetime
import os
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controlplane.demo.mesh import MeshOptions, find_envoy, sidecar_spec, write_bootstrap
from controlplane.demo.supervisor import Supervisor
from controlplane.demo.topology import CONFIG_ROOT, Workload, copy_config, load_workloads
from controlplane.demo.traffic import Target
from controlplane.model.node import ROUTER

INGRESS_DIR = CONFIG_ROOT / "ingress"
HOST = "bookinfo.demo"
HTTP_PORT = 8080
HTTPS_PORT = 8443
GATEWAY_API_PORT = 8081  # the Gateway API Gateway's listener (config/phases/7-gateway-api/)
CREDENTIAL = "bookinfo-demo-credential"  # the Gateway's credentialName
SECRET_FILE = "ingress-credential.yaml"
CA_FILE = "ingress-ca.pem"


@dataclass(frozen=True)
class Ingress:
    gateway: Workload  # the router: its address, namespace, service account, labels
    ca_path: Path  # the CA that signs the HTTPS certificate

    def http_url(self, path: str = "/productpage") -> str:
        return f"http://{self.gateway.address}:{HTTP_PORT}{path}"

    def gateway_api_target(self, path: str = "/productpage") -> Target:
        """The Gateway API listener (from the gateway-api phase on), for HOST."""
        return Target(self.gateway.address, GATEWAY_API_PORT, HOST, path)

    def curl_lines(self) -> list[str]:
        address = self.gateway.address
        return [
            f"curl {self.http_url()}",
            f"curl --cacert {self.ca_path} --resolve {HOST}:{HTTPS_PORT}:{address} https://{HOST}:{HTTPS_PORT}/productpage",
            f"curl -H 'Host: {HOST}' http://{address}:{GATEWAY_API_PORT}/productpage    # Gateway API, from the gateway-api phase on",
        ]


def gateway_workload(folder: Path = INGRESS_DIR) -> Workload:
    """The router of the ingress config in ``folder`` (its first WorkloadEntry)."""
    return replace(load_workloads(folder)[0], kind=ROUTER)


def _credential(workdir: Path) -> tuple[bytes, bytes, bytes]:
    """(CA PEM, certificate PEM, key PEM) for HOST, ECDSA P-256, valid a week."""
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey,
             ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("controlplane demo ingress CA", ca_key, "controlplane demo ingress CA", ca_key, ca=True)
    leaf = cert(HOST, key, "controlplane demo ingress CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


def write_ingress_config(config_dir: Path, workdir: Path, block: str) -> Ingress:
    """Write the gateway's YAML and its credential Secret into the watched folder."""
    staged = copy_config(INGRESS_DIR, workdir / "ingress", block)
    gateway = gateway_workload(staged[0].parent)
    ca_pem, cert_pem, key_pem = _credential(workdir)
    ca_path = workdir / CA_FILE
    ca_path.write_bytes(ca_pem)
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": CREDENTIAL, "namespace": gateway.namespace},
        "data": {"tls.crt": base64.b64encode(cert_pem).decode(), "tls.key": base64.b64encode(key_pem).decode()},
    }
    copy_config(staged[0].parent, config_dir, block)
    # Mode 0600 from the start (it holds a key), renamed into place as write_atomically does.
    target = config_dir / SECRET_FILE
    partial = target.with_name(f".{target.name}.partial")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(yaml.safe_dump(secret, sort_keys=False))
    partial.replace(target)
    return Ingress(gateway, ca_path)


def start_ingress(supervisor: Supervisor, ingress: Ingress, options: MeshOptions, xds_port: int) -> None:
    """Start the gateway's Envoy (bootstrapped as a router) and wait until it is ready."""
    spec = sidecar_spec(
        ingress.gateway, write_bootstrap(ingress.gateway, options, xds_port), find_envoy(options.envoy_binary),
        options.envoy_log_level,
    )
    supervisor.start_all([spec], options.start_timeout)
