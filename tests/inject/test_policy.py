"""Which pods get a sidecar: Istio's webhook selectors and injectRequired, on data."""

from __future__ import annotations

import pytest

from controlplane.inject import injection_required, webhook_selects, workload_of_pod


@pytest.mark.parametrize("ns_labels, pod_labels, revision, selected", [
    ({"istio-injection": "enabled"}, {}, "default", True),
    ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "false"}, "default", False),
    ({"istio-injection": "enabled"}, {}, "canary", False),
    ({"istio-injection": "disabled"}, {"sidecar.istio.io/inject": "true"}, "default", False),
    ({"istio.io/rev": "canary"}, {}, "canary", True),
    ({"istio.io/rev": "canary"}, {}, "default", False),
    ({"istio.io/rev": "canary", "istio-injection": "enabled"}, {}, "canary", False),  # label wins
    ({}, {}, "default", False),
    ({}, {"sidecar.istio.io/inject": "true"}, "default", True),
    ({}, {"istio.io/rev": "canary"}, "canary", True),
    ({}, {"istio.io/rev": "canary", "sidecar.istio.io/inject": "false"}, "canary", False),
])
def test_webhook_selectors(ns_labels, pod_labels, revision, selected) -> None:
    assert webhook_selects(ns_labels, pod_labels, revision) is selected


@pytest.mark.parametrize("metadata, spec, namespace, policy, inject", [
    ({}, {}, "default", "enabled", True),
    ({}, {"hostNetwork": True}, "default", "enabled", False),
    ({}, {}, "kube-system", "enabled", False),
    ({"annotations": {"sidecar.istio.io/inject": "false"}}, {}, "default", "enabled", False),
    ({"annotations": {"sidecar.istio.io/inject": "yes"}}, {}, "default", "disabled", True),
    ({}, {}, "default", "disabled", False),
    # The label wins over the annotation.
    ({"labels": {"sidecar.istio.io/inject": "true"}, "annotations": {"sidecar.istio.io/inject": "false"}},
     {}, "default", "enabled", True),
    ({"labels": {"sidecar.istio.io/inject": "nope"}}, {}, "default", "enabled", False),
])
def test_injection_required(metadata, spec, namespace, policy, inject) -> None:
    assert injection_required(metadata, spec, namespace=namespace, policy=policy).inject is inject


def test_workload_of_pods() -> None:
    rs = {"name": "reviews-v1-7d9f-x2", "labels": {"pod-template-hash": "7d9f"},
          "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "reviews-v1-7d9f",
                               "controller": True}]}
    meta = workload_of_pod(rs, "shop")
    assert (meta.name, meta.kind) == ("reviews-v1", "Deployment")
    assert meta.owner == "kubernetes://apis/apps/v1/namespaces/shop/deployments/reviews-v1"
    bare = workload_of_pod({"name": "debug"}, "shop")
    assert bare.owner == "kubernetes://apis/v1/namespaces/shop/pods/debug"
