"""Istio's canonical service and revision of a workload, from its labels (as the injector
writes ``service.istio.io/canonical-name`` / ``canonical-revision``)."""

from __future__ import annotations

from collections.abc import Mapping

MAX_LABEL_VALUE = 63
# Names a pod's workload (Istio's DeploymentMeta), whatever its owner.
WORKLOAD_NAME_LABEL = "service.istio.io/workload-name"


def canonical_name(labels: Mapping[str, str], workload_name: str) -> str:
    name = (
        labels.get("service.istio.io/canonical-name")
        or labels.get("app.kubernetes.io/name")
        or labels.get("app")
        or workload_name
    )
    return _label_value(name)


def _label_value(value: str) -> str:
    """At most 63 characters, ending alphanumeric (a label value's rule)."""
    return value[:MAX_LABEL_VALUE].rstrip("-_.")


def canonical_revision(labels: Mapping[str, str]) -> str:
    revision = (
        labels.get("service.istio.io/canonical-revision")
        or labels.get("app.kubernetes.io/version")
        or labels.get("version")
        or "latest"
    )
    return _label_value(revision)


def pod_workload_name(pod_name: str, labels: Mapping[str, str]) -> str:
    """The workload of a Pod as Istio names it (its ``WORKLOAD_NAME``), from what the mesh
    keeps of a Pod (not its owner references): the ``service.istio.io/workload-name`` label,
    else its Deployment when the name carries its ReplicaSet's ``pod-template-hash``
    (``reviews-v1-<hash>-<id>``: ``reviews-v1``), else the pod's own name."""
    named = labels.get(WORKLOAD_NAME_LABEL)
    if named:
        return named
    template_hash = labels.get("pod-template-hash")
    if template_hash:
        deployment, found, _ = pod_name.rpartition(f"-{template_hash}-")
        if found and deployment:
            return deployment
    return pod_name
