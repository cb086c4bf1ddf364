"""One app behind a client sidecar, all of it from the Kubernetes API: the app's Service and
EndpointSlice, a VirtualService that tags responses with ``x-route``, and a Sidecar whose
egress listener binds its own loopback address (``captureMode: NONE``), so that a test calls
``EGRESS_IP:PORT`` with the app's Host and reaches it through a real Envoy."""

from __future__ import annotations

from typing import Any

from tests.harness.envoy import http_get

PORT = 9080
CLIENT_IP = "127.0.71.1"
EGRESS_IP = "127.0.71.101"


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", **extra}


def service(name: str) -> dict[str, Any]:
    return {"metadata": _meta(name), "spec": {
        "selector": {"app": name}, "ports": [{"name": "http", "port": PORT, "protocol": "TCP"}],
    }}  # fmt: skip


def endpoint_slice(service_name: str, port: int) -> dict[str, Any]:
    return {
        "metadata": _meta(f"{service_name}-1", labels={"kubernetes.io/service-name": service_name}),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": ["127.0.0.1"]}],
    }


def virtual_service(header: str) -> dict[str, Any]:
    return {"metadata": _meta("app"), "spec": {"hosts": ["app"], "http": [{
        "route": [{"destination": {"host": "app"}}],
        "headers": {"response": {"set": {"x-route": header}}},
    }]}}  # fmt: skip


def client_sidecar() -> dict[str, Any]:
    return {"metadata": _meta("client"), "spec": {
        "workloadSelector": {"labels": {"app": "client"}},
        "egress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                    "bind": EGRESS_IP, "captureMode": "NONE", "hosts": ["./*"]}],
    }}  # fmt: skip


def reach(host: str) -> tuple[int, str, str]:
    """Status, answering app and x-route of one request through the client's egress."""
    status, headers, _ = http_get(EGRESS_IP, PORT, headers={"Host": f"{host}:{PORT}"}, timeout=5)
    return status, headers.get("x-upstream", ""), headers.get("x-route", "")
