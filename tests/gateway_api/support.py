"""Helpers shared by the Gateway API tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.kube_double.server import KubeApiDouble

GATEWAY_API = "gateway.networking.k8s.io/v1"


@contextmanager
def api_double(collections: dict[str, tuple[str, str]]) -> Iterator[KubeApiDouble]:
    """The Kubernetes API test double serving ``{path: (kind, apiVersion)}``, started and stopped."""
    double = KubeApiDouble()
    for path, (kind, api_version) in collections.items():
        double.serve(path, kind, api_version)
    double.start()
    try:
        yield double
    finally:
        double.stop()
