"""The Kubernetes source watches the Gateway API kinds through the official client against the
API server test double: a Gateway API Gateway is stored as KubernetesGateway beside an Istio
Gateway of the same name, and a Gateway API CRD that is not installed is a warning."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from controlplane.model.base import ResourceKey
from controlplane.sources.kubernetes import DEFAULT_KINDS, KubernetesSource
from controlplane.store import Store
from tests.gateway_api.support import GATEWAY_API, api_double
from tests.kube_double.server import KubeApiDouble
from tests.kube_double.support import FAST, api_client_for
from tests.sources.helpers import wait_for

GATEWAYS = "/apis/gateway.networking.k8s.io/v1/gateways"
HTTP_ROUTES = "/apis/gateway.networking.k8s.io/v1/httproutes"
ISTIO_GATEWAYS = "/apis/networking.istio.io/v1/gateways"
NAMES = ("Gateway", "KubernetesGateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "ReferenceGrant",
         "GatewayClass")


@pytest.fixture
def kube() -> Iterator[KubeApiDouble]:
    with api_double({GATEWAYS: ("Gateway", GATEWAY_API), HTTP_ROUTES: ("HTTPRoute", GATEWAY_API),
                     ISTIO_GATEWAYS: ("Gateway", "networking.istio.io/v1")}) as double:
        yield double


def test_gateway_api_kinds_are_watched_and_missing_crds_warn(
    kube: KubeApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    kube.upsert(GATEWAYS, {"metadata": {"name": "web", "namespace": "default"}, "spec": {
        "gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
    kube.upsert(ISTIO_GATEWAYS, {"metadata": {"name": "web", "namespace": "default"}, "spec": {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}})
    kube.upsert(HTTP_ROUTES, {"metadata": {"name": "web", "namespace": "default"}, "spec": {
        "parentRefs": [{"name": "web"}], "rules": [{"backendRefs": [{"name": "app", "port": 80}]}]}})
    store = Store()
    kinds = tuple(k for k in DEFAULT_KINDS if k.name in NAMES)
    with caplog.at_level(logging.WARNING), KubernetesSource(store, api_client_for(kube), kinds=kinds,
                                                           options=FAST) as source:
        assert source.wait_synced(10)
        wait_for(lambda: len(list(store.snapshot)) == 3, what="the three objects")
        keys = set(store.snapshot)
        assert {ResourceKey("KubernetesGateway", "default", "web"), ResourceKey("Gateway", "default", "web"),
                ResourceKey("HTTPRoute", "default", "web")} == keys
        assert set(source.missing) == {
            "kubernetes/GatewayClass", "kubernetes/GRPCRoute", "kubernetes/TLSRoute", "kubernetes/TCPRoute",
            "kubernetes/ReferenceGrant",
        }
        assert not source.errors
    warned = [r for r in caplog.records if "kubernetes/TCPRoute" in r.getMessage()]
    assert warned and all(r.levelno == logging.WARNING for r in warned)
    # TCPRoute was looked for under every version Istio reads it at.
    tried = {r.path for r in kube.requests if "tcproutes" in r.path}
    assert {"/apis/gateway.networking.k8s.io/v1/tcproutes",
            "/apis/gateway.networking.k8s.io/v1alpha2/tcproutes"} <= tried


def test_the_versions_served_are_known_per_group(kube: KubeApiDouble) -> None:
    store = Store()
    kinds = tuple(k for k in DEFAULT_KINDS if k.name in NAMES)
    with KubernetesSource(store, api_client_for(kube), kinds=kinds, options=FAST) as source:
        assert source.wait_synced(10)
        assert source.served_versions("gateway.networking.k8s.io") == {"Gateway": "v1", "HTTPRoute": "v1"}
        assert source.served_versions("networking.istio.io") == {"Gateway": "v1"}
