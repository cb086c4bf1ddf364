from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube_double.server import KubeApiDouble

SERVICES = "/api/v1/services"
NAMESPACES = "/api/v1/namespaces"
ENDPOINTS = "/api/v1/endpoints"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
VIRTUAL_SERVICES = "/apis/networking.istio.io/v1/virtualservices"


@pytest.fixture
def kube() -> Iterator[KubeApiDouble]:
    double = KubeApiDouble()
    double.serve(SERVICES, "Service", "v1")
    double.serve(NAMESPACES, "Namespace", "v1")
    double.serve(SLICES, "EndpointSlice", "discovery.k8s.io/v1")
    double.serve(VIRTUAL_SERVICES, "VirtualService", "networking.istio.io/v1")
    double.start()
    try:
        yield double
    finally:
        double.stop()
