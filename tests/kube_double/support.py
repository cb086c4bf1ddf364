"""What tests of the Kubernetes source share: a client for the API test double, fast
reflector timings, and a Service object."""

from __future__ import annotations

from typing import Any

from controlplane.sources.reflector import ReflectorOptions
from tests.harness.kube import api_client_for

__all__ = ["FAST", "api_client_for", "service"]

FAST = ReflectorOptions(
    watch_timeout_seconds=60, backoff_initial=0.05, backoff_max=0.2, missing_recheck_seconds=0.3
)


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
