"""A small mesh for fault tests: a client sidecar and a server sidecar in front of a loopback
app, both real Envoys bootstrapped by ``controlplane bootstrap`` (xDS over TLS, a token for
their own identity), with STRICT mTLS (SDS certificates), an AuthorizationPolicy (RBAC over
ECDS) and a RequestAuthentication with inline keys (jwt_authn over ECDS) on the server.

    client (127.0.70.1; egress 127.0.70.101:9080) --mTLS--> server sidecar 127.0.70.2:9080 --> app

And what a test reads of an Envoy: the version of each resource it holds (``/config_dump``)
and its xDS counters (``/stats``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.harness.envoy import EnvoyProcess, http_get
from tests.harness.ports import free_port

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


def bootstrapped_envoy(
    workdir: Path,
    ca_dir: Path,
    xds_tls_port: int,
    name: str,
    *,
    delta: bool = False,
    address: str = "",
    service_account: str = "",
) -> EnvoyProcess:
    """An Envoy whose bootstrap ``controlplane bootstrap`` wrote (token minted from the CA
    folder, the root that signs the xDS server's certificate); address and service account
    from PROXIES unless given."""
    if not address:
        address, service_account = PROXIES[name]
    path = workdir / f"{name}-bootstrap.json"
    command = [
        sys.executable, "-m", "controlplane", "bootstrap",
        "-n", NAMESPACE, "-s", service_account, "--labels", f"app={name}", "--ip", address,
        "--xds-address", f"127.0.0.1:{xds_tls_port}", "--ca-dir", str(ca_dir),
        "--token-ttl", "3600", "--admin-port", str(free_port()),
        "--stats-port", "0", "--health-port", "0", "-o", str(path),
        *(["--delta"] if delta else []),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return EnvoyProcess(json.loads(path.read_text()), workdir, name=name)


def call_server() -> int:
    """One request from the client's egress listener to the server's app; its status."""
    status, headers, _ = http_get(
        CLIENT_EGRESS_IP, PORT, headers={"Host": f"server:{PORT}"}, timeout=5
    )
    if status == 200 and headers.get("x-upstream") != "app":
        return -1  # answered by something else than the app
    return status


# --- what an Envoy holds --------------------------------------------------------------------

_DUMP_LISTS: Mapping[str, tuple[str, ...]] = {
    # config_dump section -> path to (name, version) in each entry
    "dynamic_active_clusters": ("cluster", "name"),
    "dynamic_listeners": ("active_state", "listener", "name"),
    "dynamic_route_configs": ("route_config", "name"),
    "dynamic_endpoint_configs": ("endpoint_config", "cluster_name"),
    "ecds_filters": ("ecds_filter", "name"),
    "dynamic_active_secrets": ("name",),
}
_TYPES = {
    "dynamic_active_clusters": "CDS",
    "dynamic_listeners": "LDS",
    "dynamic_route_configs": "RDS",
    "dynamic_endpoint_configs": "EDS",
    "ecds_filters": "ECDS",
    "dynamic_active_secrets": "SDS",
}


def _dig(entry: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = entry
    for key in path:
        value = (value or {}).get(key)
    return value


def held_versions(envoy: EnvoyProcess) -> dict[tuple[str, str], tuple[str, str]]:
    """(type, resource name) -> (version_info, last_updated) of every dynamic resource the
    Envoy holds, from its admin ``/config_dump?include_eds``."""
    dump = json.loads(envoy.admin("/config_dump?include_eds"))
    held: dict[tuple[str, str], tuple[str, str]] = {}
    for config in dump.get("configs", []):
        for section, path in _DUMP_LISTS.items():
            for entry in config.get(section, []):
                versioned = entry.get("active_state", entry)
                name = _dig(entry, path)
                if name:
                    held[(_TYPES[section], str(name))] = (
                        str(versioned.get("version_info", "")),
                        str(versioned.get("last_updated", "")),
                    )
    return held


COUNTER_SUFFIXES = (
    ".update_success",
    ".update_attempt",
    ".update_rejected",
    ".update_failure",
    ".config_reload",
    ".config_fail",
)
LISTENER_MANAGER = (
    "listener_manager.total_listeners_draining",
    "listener_manager.total_listeners_warming",
    "listener_manager.listener_added",
    "listener_manager.listener_modified",
    "listener_manager.listener_removed",
    "listener_manager.listener_create_success",
    "listener_manager.total_filter_chains_draining",
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
    "cluster_manager.warming_clusters",
)


def xds_counters(envoy: EnvoyProcess) -> dict[str, int]:
    """Every xDS update counter the Envoy has (LDS, CDS, RDS, EDS, ECDS, SDS), and the
    listener and cluster manager's adds, changes, removals and drains."""
    stats = envoy.stats()
    return {
        name: value
        for name, value in sorted(stats.items())
        if name in LISTENER_MANAGER or (name.endswith(COUNTER_SUFFIXES) and "grpc." not in name)
    }
