"""A small mesh for fault tests: a client sidecar and a server sidecar in front of a loopback
app, both real Envoys bootstrapped by ``controlplane bootstrap`` (xDS over TLS, a token for
their own identity), with STRICT mTLS (SDS certificates), an AuthorizationPolicy (RBAC over
ECDS) and a RequestAuthentication with inline keys (jwt_authn over ECDS) on the server.

    client (127.0.70.1; egress 127.0.70.101:9080) --mTLS--> server sidecar 127.0.70.2:9080 --> app
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.harness.bootstrap import bootstrapped_envoy
from tests.harness.envoy import EnvoyProcess, http_get

NAMESPACE = "default"
PORT = 9080
CLIENT_IP = "127.0.70.1"
CLIENT_EGRESS_IP = "127.0.70.101"
SERVER_IP = "127.0.70.2"
PROXIES = {  # name: (address, service account)
    "client": (CLIENT_IP, "client"),
    "server": (SERVER_IP, "server"),
}


def _doc(kind: str, api: str, name: str, **body: Any) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        **body,
    }


def mesh_docs(app_port: int, jwks: str) -> list[dict[str, Any]]:
    server = {"matchLabels": {"app": "server"}}
    return [
        _doc("Service", "v1", "server", spec={
            "selector": {"app": "server"},
            "ports": [{"name": "http", "port": PORT, "targetPort": PORT}],
        }),
        _doc("WorkloadEntry", "networking.istio.io/v1", "server", spec={
            "address": SERVER_IP, "labels": {"app": "server"}, "serviceAccount": "server",
        }),
        _doc("Sidecar", "networking.istio.io/v1", "server", spec={
            "workloadSelector": {"labels": {"app": "server"}},
            "ingress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                         "bind": SERVER_IP, "captureMode": "NONE",
                         "defaultEndpoint": f"127.0.0.1:{app_port}"}],
            "egress": [{"hosts": ["./*"]}],
        }),
        _doc("Sidecar", "networking.istio.io/v1", "client", spec={
            "workloadSelector": {"labels": {"app": "client"}},
            "egress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                        "bind": CLIENT_EGRESS_IP, "captureMode": "NONE", "hosts": ["./*"]}],
        }),
        _doc("PeerAuthentication", "security.istio.io/v1", "default", spec={"mtls": {"mode": "STRICT"}}),
        _doc("AuthorizationPolicy", "security.istio.io/v1", "server-allow-client", spec={
            "selector": server,
            "rules": [{"from": [{"source": {"principals": [f"cluster.local/ns/{NAMESPACE}/sa/client"]}}]}],
        }),
        _doc("RequestAuthentication", "security.istio.io/v1", "server-jwt", spec={
            "selector": server,
            "jwtRules": [{"issuer": "https://issuer.test", "jwks": jwks}],
        }),
    ]  # fmt: skip


def mesh_yaml(app_port: int, jwks: str) -> str:
    return yaml.safe_dump_all(mesh_docs(app_port, jwks), sort_keys=False)


def mesh_envoy(
    workdir: Path, ca_dir: Path, xds_tls_port: int, name: str, *, delta: bool = False
) -> EnvoyProcess:
    """The Envoy of one of PROXIES (not started)."""
    address, service_account = PROXIES[name]
    return bootstrapped_envoy(workdir, ca_dir, xds_tls_port, name, address=address,
                              service_account=service_account, namespace=NAMESPACE, delta=delta)


def call_server() -> int:
    """One request from the client's egress listener to the server's app; its status."""
    status, headers, _ = http_get(
        CLIENT_EGRESS_IP, PORT, headers={"Host": f"server:{PORT}"}, timeout=5
    )
    if status == 200 and headers.get("x-upstream") != "app":
        return -1  # answered by something else than the app
    return status
