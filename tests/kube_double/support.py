"""What tests of the Kubernetes source share: a client for the API test double, fast
reflector timings, and a Service object."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from controlplane.sources.reflector import ReflectorOptions
from tests.kube_double.server import KubeApiDouble

FAST = ReflectorOptions(
    watch_timeout_seconds=60, backoff_initial=0.05, backoff_max=0.2, missing_recheck_seconds=0.3
)


def api_client_for(double: KubeApiDouble) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = double.url
    return client.ApiClient(configuration)


def service(name: str, port: int = 80, namespace: str = "default") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": port + 1, "protocol": "TCP"}],
            "clusterIP": "10.0.0.1",
            "type": "ClusterIP",
        },
    }
