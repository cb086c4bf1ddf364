"""The ``controlplane-kube`` benchmark target: ``controlplane serve --kubernetes`` fed by the
Kubernetes API test double in its own process, changes made by HTTP writes to it. Never
asserts on timings."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kubernetes import client, watch

from benchmarks import mesh, report
from benchmarks.__main__ import PRESETS
from benchmarks.kube_api import served_collections
from benchmarks.kube_target import writes
from benchmarks.runner import run
from controlplane.sources.kubernetes import DEFAULT_KINDS
from tests.benchmarks.support import MAIN, assert_converged
from tests.harness.kube import PODS, api_client_for
from tests.kube_double.server import KubeApiDouble

SMALL = PRESETS["small"]
TARGET = "controlplane-kube"


async def test_every_change_through_the_api_reaches_every_proxy() -> None:
    results = await run(replace(SMALL, targets=("floor", TARGET), scenarios=MAIN))
    assert results["errors"] == []
    ours = [r for r in results["runs"] if r["target"] == TARGET]
    assert [r["scenario"] for r in ours] == list(MAIN)
    for result in ours:
        assert_converged(result)
    assert ours[1]["expected"] == SMALL.churn_changes * SMALL.proxies  # no update lost
    assert ours[1]["server"]["pushes"] > 0  # the server's own account of the window was read
    # The double answered every list and watch of a collection the control plane requires;
    # what it answered 404 is an optional CRD (not installed), which did not stall readiness.
    optional = {c.path for kind in DEFAULT_KINDS if kind.optional for c in kind.candidates}
    not_found = set(results["targets"][TARGET]["api_not_found"])
    assert not_found and not_found <= optional
    # The ratios and the goals name the kube target beside the folder one.
    assert {r["target"] for r in report.ratios(results["runs"])} == {TARGET}
    goals = {(g["goal"], g["target"]) for g in report.goals(results["runs"])}
    for scenario in MAIN:
        assert (f"{scenario} p99 / floor", TARGET) in goals
        assert (f"{scenario} peak RSS / floor", TARGET) in goals


@pytest.mark.envoy
async def test_real_envoys_apply_every_endpoint_change_made_through_the_api() -> None:
    results = await run(replace(SMALL, targets=(TARGET,), scenarios=("envoy_churn",),
                                churn_changes=3))
    assert results["errors"] == []
    (envoy,) = results["envoy"]
    assert envoy["ready"] == SMALL.envoys
    assert envoy["complete"] and envoy["converged"] == 3 * SMALL.envoys, envoy


def test_each_change_is_the_api_writes_kubectl_would_make() -> None:
    state = mesh.generate(SMALL.spec)
    churned, added, removed = mesh.churn_endpoints(state, 1)
    assert removed is not None
    churn = writes(mesh.service_documents(state, 1), mesh.service_documents(churned, 1))
    ns, svc = state.namespace(1), state.services[1].name
    assert [(method, path) for method, path, _ in churn] == [
        ("POST", f"/api/v1/namespaces/{ns}/pods"),  # the new pod runs first
        ("PUT", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{svc}-slice"),
        ("DELETE", f"/api/v1/namespaces/{ns}/pods/{svc}-{removed.version}-0"),  # then goes
    ]
    assert added.ip.encode() in churn[0][2] and added.ip.encode() in churn[1][2]

    index = next(s.index for s in state.services if s.weights is not None)
    routed = mesh.set_weights(state, index, (37, 63))
    (only,) = writes(mesh.service_documents(state, index), mesh.service_documents(routed, index))
    namespace, name = state.namespace(index), state.services[index].name
    path = f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/{name}"
    assert only[:2] == ("PUT", path)

    grown, new = mesh.add_service(state)
    created = writes([], mesh.service_documents(grown, new))
    assert {method for method, _, _ in created} == {"POST"}
    kinds = [path.rsplit("/", 1)[1] for _, path, _ in created]
    pods = ["pods"] * SMALL.spec.endpoints
    assert kinds == pods + ["services", "endpointslices", "destinationrules"]


def test_the_double_deletes_an_object_as_the_api_server_does() -> None:
    state = mesh.generate(SMALL.spec)
    pod = next(d for d in mesh.service_documents(state, 0) if d["kind"] == "Pod")
    with KubeApiDouble() as double:
        for path, (kind, api_version) in served_collections([pod]).items():
            double.serve(path, kind, api_version)
        double.upsert(PODS, pod)
        api = client.CoreV1Api(api_client_for(double))
        listed = api.list_pod_for_all_namespaces()
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        deleted = api.delete_namespaced_pod(name, namespace)
        assert deleted.metadata.name == name
        events = watch.Watch().stream(api.list_pod_for_all_namespaces, timeout_seconds=1,
                                      resource_version=listed.metadata.resource_version)
        assert [(e["type"], e["object"].metadata.name) for e in events] == [("DELETED", name)]
        assert double.objects(PODS) == []
        try:
            api.delete_namespaced_pod(name, namespace)
        except client.ApiException as error:
            assert error.status == 404
        else:
            raise AssertionError("a second DELETE of the same pod succeeded")


async def test_the_watch_latency_script_sees_every_change_reach_the_store() -> None:
    from benchmarks.kube_watch_latency import measure

    from_first, from_slice = await measure(services=20, changes=3, gap=0.0)
    assert len(from_first) == len(from_slice) == 3
