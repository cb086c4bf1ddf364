"""A workload's names as Istio's telemetry reports them (``model.canonical``)."""

from __future__ import annotations

import pytest

from controlplane.model.canonical import (
    WORKLOAD_NAME_LABEL,
    canonical_name,
    canonical_revision,
    pod_workload_name,
)


@pytest.mark.parametrize(
    ("pod", "labels", "expected"),
    [
        # a Deployment's pod: <deployment>-<pod-template-hash>-<id>
        ("reviews-v1-5f7b8c9d4-x2x7q", {"pod-template-hash": "5f7b8c9d4"}, "reviews-v1"),
        # the label names the workload whatever the owner
        ("db-0", {WORKLOAD_NAME_LABEL: "db", "pod-template-hash": "abc"}, "db"),
        # a hash that is not in the name, or no hash: the pod is its own workload
        ("web-0", {"pod-template-hash": "5f7b8c9d4"}, "web-0"),
        ("standalone", {}, "standalone"),
    ],
)
def test_pod_workload_name(pod: str, labels: dict[str, str], expected: str) -> None:
    assert pod_workload_name(pod, labels) == expected


def test_canonical_service_and_revision_from_labels() -> None:
    labels = {"app": "reviews", "version": "v2"}
    assert (canonical_name(labels, "reviews-v2"), canonical_revision(labels)) == ("reviews", "v2")
    assert canonical_name({}, "worker-" + "x" * 70) == "worker-" + "x" * 56  # a label value: 63 at most
    assert canonical_revision({}) == "latest"
