"""translate() dispatches on the proxy's kind: sidecars and gateways have their own builders."""

from __future__ import annotations

import dataclasses

import pytest

from controlplane.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    MeshConfig,
    Proxy,
    TranslationError,
    endpoints,
    push_context,
    translate,
)
from tests.translate.support import GOLDEN, load_documents, snapshot_of


def _ctx():
    return push_context(snapshot_of(load_documents((GOLDEN / "bookinfo_all_v1" / "input.yaml").read_text())), MeshConfig())


def test_a_router_gets_clusters_and_endpoints_but_no_sidecar_listeners() -> None:
    ctx = _ctx()
    gateway = Proxy.make("router", "istio-system", labels={"istio": "ingressgateway"})
    out = translate(ctx, gateway)
    names = {c.name for c in out[CLUSTER_TYPE]}
    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in names
    assert "BlackHoleCluster" in names
    assert not any(n.startswith("inbound|") for n in names)
    assert out[LISTENER_TYPE] == [] and out[ROUTE_TYPE] == []  # no Gateway resource selects it
    assert [a.cluster_name for a in out[ENDPOINT_TYPE]] == [a.cluster_name for a in endpoints(ctx, gateway)]
    sidecar = translate(ctx, Proxy.make("sidecar", "default", labels={"app": "productpage"}))
    assert {lst.name for lst in sidecar[LISTENER_TYPE]} >= {"virtualOutbound", "virtualInbound"}


def test_a_kind_without_a_builder_is_a_typed_error() -> None:
    waypoint = dataclasses.replace(Proxy.make("sidecar", "default"), kind="waypoint")
    with pytest.raises(TranslationError, match="waypoint"):
        translate(_ctx(), waypoint)
