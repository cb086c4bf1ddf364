"""Status written back through the Kubernetes API (the test double's status subresource, by
the official client): only while leading, only what changed, transition times kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.cluster.gateway_status import GatewayStatusWriter
from controlplane.model import parse
from controlplane.sources.kubernetes import DEFAULT_KINDS, KubernetesSource
from controlplane.store import ChangeSet, Store
from controlplane.translate.gateway_api import convert, inputs_from_snapshot
from tests.gateway_api.support import GATEWAY_API, api_double
from tests.kube_double.server import KubeApiDouble
from tests.kube_double.support import FAST, api_client_for
from tests.sources.helpers import wait_for
from tests.translate.support import snapshot_of

API = "/apis/gateway.networking.k8s.io/v1"
CLASSES, GATEWAYS, ROUTES, SERVICES = f"{API}/gatewayclasses", f"{API}/gateways", f"{API}/httproutes", "/api/v1/services"


@pytest.fixture
def kube() -> Iterator[KubeApiDouble]:
    with api_double({CLASSES: ("GatewayClass", GATEWAY_API), GATEWAYS: ("Gateway", GATEWAY_API),
                     ROUTES: ("HTTPRoute", GATEWAY_API), SERVICES: ("Service", "v1")}) as double:
        yield double


def _status(kube: KubeApiDouble, path: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in kube.objects(path) if o["metadata"]["name"] == name]
    return obj.get("status") or {}


def test_status_is_written_when_it_changes_and_only_by_the_leader(kube: KubeApiDouble) -> None:
    kube.upsert(CLASSES, {"metadata": {"name": "istio"}, "spec": {"controllerName": "istio.io/gateway-controller"}})
    kube.upsert(GATEWAYS, {"metadata": {"name": "web", "namespace": "infra"}, "spec": {
        "gatewayClassName": "istio",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}})
    theirs = {"parentRef": {"name": "other-gw", "namespace": "infra"}, "controllerName": "example.com/other",
              "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    kube.upsert(ROUTES, {"metadata": {"name": "r", "namespace": "apps"}, "spec": {
        "parentRefs": [{"name": "web", "namespace": "infra"}, {"name": "other-gw", "namespace": "infra"}],
        "rules": [{"backendRefs": [{"name": "app", "port": 80}]}]},
        "status": {"parents": [theirs]}})
    store = Store()
    kinds = tuple(k for k in DEFAULT_KINDS if k.name in ("GatewayClass", "KubernetesGateway", "HTTPRoute", "Service"))
    leading = {"now": False}
    with KubernetesSource(store, api_client_for(kube), kinds=kinds, options=FAST) as source:
        assert source.wait_synced(10)
        wait_for(lambda: len(list(store.snapshot)) == 3, what="the objects")
        writer = GatewayStatusWriter(api_client_for(kube),
                                     lambda: convert(inputs_from_snapshot(store.snapshot)).statuses,
                                     lambda: leading["now"])
        writer.write_changed()  # a round at a time (no thread): not leading, nothing written
        assert not [r for r in kube.requests if r.query.get("method") == "PATCH"]  # not leading: nothing

        leading["now"] = True
        changes: list[ChangeSet] = []
        store.subscribe(changes.append)
        writer.write_changed()
        patches = [r for r in kube.requests if r.query.get("method") == "PATCH"]
        assert {r.path for r in patches} == {f"{CLASSES}/istio/status", f"{API}/namespaces/infra/gateways/web/status",
                                            f"{API}/namespaces/apps/httproutes/r/status"}
        assert all("merge-patch" in r.query["content-type"] for r in patches)
        route = _status(kube, ROUTES, "r")
        parent, kept = route["parents"]  # ours, and the other controller's entry untouched
        assert parent["controllerName"] == "istio.io/gateway-controller" and kept == theirs
        conditions = {c["type"]: c for c in parent["conditions"]}
        assert conditions["ResolvedRefs"]["reason"] == "BackendNotFound" and conditions["ResolvedRefs"]["status"] == "False"
        accepted_at = conditions["Accepted"]["lastTransitionTime"]
        gateway = _status(kube, GATEWAYS, "web")
        assert gateway["listeners"][0]["attachedRoutes"] == 1
        assert _status(kube, CLASSES, "istio")["conditions"][0]["reason"] == "Accepted"

        # Nothing changed: nothing written (the watch brought our own writes back meanwhile).
        writes = writer.writes
        writer.write_changed()
        assert writer.writes == writes

        # The backend appears: only the route's status changes; Accepted keeps its time.
        kube.upsert(SERVICES, {"metadata": {"name": "app", "namespace": "apps"}, "spec": {"ports": [{"port": 80}]}})
        wait_for(lambda: any(k.kind == "Service" for k in store.snapshot), what="the Service")
        before = len([r for r in kube.requests if r.query.get("method") == "PATCH"])
        writer.write_changed()
        new = [r.path for r in kube.requests if r.query.get("method") == "PATCH"][before:]
        assert new == [f"{API}/namespaces/apps/httproutes/r/status"]
        conditions = {c["type"]: c for c in _status(kube, ROUTES, "r")["parents"][0]["conditions"]}
        assert conditions["ResolvedRefs"]["status"] == "True"
        assert conditions["Accepted"]["lastTransitionTime"] == accepted_at
        assert _status(kube, ROUTES, "r")["parents"][1] == theirs

        # Our writes come back through the watch with new resourceVersions, and change nothing
        # the model reads: no change, so no push. Watches deliver in order, so once a later
        # object of each kind is seen, the writes before it were too.
        kube.upsert(ROUTES, {"metadata": {"name": "later", "namespace": "apps"}, "spec": {
            "parentRefs": [{"name": "web", "namespace": "infra"}]}})
        kube.upsert(GATEWAYS, {"metadata": {"name": "later", "namespace": "infra"}, "spec": {
            "gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
        wait_for(lambda: sum(k.name == "later" for k in store.snapshot) == 2, what="the later objects")
        assert {key.name for cs in changes for key in cs.changes} == {"later", "app"}  # and the Service added


@pytest.mark.slow
def test_serve_kubernetes_writes_the_status_of_routes(tmp_path: Any) -> None:
    """`controlplane serve --kubernetes` (the leader, alone) writes what Istio would."""
    from contextlib import ExitStack

    from benchmarks.replicas import leader, start_replica
    from tests.harness.wait import wait_for as wait
    from tests.replicas.cluster import cluster_double

    with cluster_double() as kube, ExitStack() as stack:
        for path, kind in ((CLASSES, "GatewayClass"), (GATEWAYS, "Gateway"), (ROUTES, "HTTPRoute")):
            kube.serve(path, kind, GATEWAY_API)
        kube.upsert(GATEWAYS, {"metadata": {"name": "web", "namespace": "default"}, "spec": {
            "gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
        kube.upsert(ROUTES, {"metadata": {"name": "r", "namespace": "default"}, "spec": {
            "parentRefs": [{"name": "web", "sectionName": "nope"}],
            "rules": [{"backendRefs": [{"name": "app", "port": 80}]}]}})
        start_replica(stack, tmp_path, kube, 0)
        wait(lambda: leader(kube) == "replica-0", message="leading")
        parents = wait(lambda: _status(kube, ROUTES, "r").get("parents"), message="the route's status")
        conditions = {c["type"]: (c["status"], c["reason"]) for c in parents[0]["conditions"]}
        assert conditions["Accepted"] == ("False", "NoMatchingParent")
        listener = wait(lambda: _status(kube, GATEWAYS, "web").get("listeners"), message="the Gateway's status")
        assert listener[0]["attachedRoutes"] == 0


def test_a_backend_tls_policy_gets_its_ancestors_and_keeps_other_controllers() -> None:
    policies = f"{API}/backendtlspolicies"
    policy = {"apiVersion": GATEWAY_API, "kind": "BackendTLSPolicy", "metadata": {"name": "tls", "namespace": "apps"},
              "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "app"}],
                       "validation": {"hostname": "app.example.com", "wellKnownCACertificates": "System"}}}
    theirs = {"ancestorRef": {"group": "", "kind": "Service", "name": "app"}, "controllerName": "example.com/other",
              "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": "apps"},
               "spec": {"ports": [{"port": 443}]}}
    snapshot = snapshot_of([parse(policy), parse(service)])
    with api_double({policies: ("BackendTLSPolicy", GATEWAY_API)}) as kube:
        kube.upsert(policies, {**policy, "status": {"ancestors": [theirs]}})
        writer = GatewayStatusWriter(api_client_for(kube), lambda: convert(inputs_from_snapshot(snapshot)).statuses,
                                     lambda: True)
        writer.write_changed()
        ours, kept = _status(kube, policies, "tls")["ancestors"]
    assert kept == theirs
    assert ours["controllerName"] == "istio.io/mesh-controller"
    assert ours["ancestorRef"] == {"group": "", "kind": "Service", "name": "app"}
    assert {c["type"]: c["reason"] for c in ours["conditions"]} == {"Accepted": "Accepted", "ResolvedRefs": "ResolvedRefs"}
