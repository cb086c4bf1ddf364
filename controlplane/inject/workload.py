"""Which workload a pod belongs to (Istio's DeploymentMeta): the name behind
``ISTIO_META_WORKLOAD_NAME``, ``ISTIO_META_OWNER`` and the canonical-name default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.model.canonical import WORKLOAD_NAME_LABEL


@dataclass(frozen=True)
class WorkloadMeta:
    name: str
    namespace: str
    kind: str = ""  # e.g. Deployment
    api_version: str = ""  # e.g. apps/v1
    owner_name: str = ""  # the owner object's name when ``name`` comes from a label

    @property
    def owner(self) -> str:
        """``kubernetes://apis/apps/v1/namespaces/default/deployments/hello``."""
        if not (self.api_version and self.name):
            return ""
        return (
            f"kubernetes://apis/{self.api_version}/namespaces/{self.namespace or 'default'}/"
            f"{self.kind.lower()}s/{self.owner_name or self.name}"
        )


def workload_of_pod(metadata: Mapping[str, Any], namespace: str) -> WorkloadMeta:
    """As Istio's GetDeployMetaFromPod: the controller owner; a ReplicaSet made by a
    Deployment (``pod-template-hash``) and a Job made by a CronJob count as their parent."""
    labels = metadata.get("labels") or {}
    name = str(metadata.get("name") or metadata.get("generateName") or "")
    owner = next((o for o in metadata.get("ownerReferences") or () if o.get("controller")), None)
    if owner is None:
        return WorkloadMeta(labels.get(WORKLOAD_NAME_LABEL) or name, namespace, "Pod", "v1", name)
    kind, owner_name = str(owner.get("kind", "")), str(owner.get("name", ""))
    api_version = str(owner.get("apiVersion", ""))
    template_hash = labels.get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and owner_name.endswith(f"-{template_hash}"):
        return WorkloadMeta(owner_name[: -len(template_hash) - 1], namespace, "Deployment", "apps/v1")
    if kind == "Job" and labels.get("batch.kubernetes.io/cronjob-name"):
        return WorkloadMeta(labels["batch.kubernetes.io/cronjob-name"], namespace, "CronJob", "batch/v1")
    return WorkloadMeta(owner_name, namespace, kind, api_version)


def workload_of_object(
    obj: Mapping[str, Any], namespace: str, template_labels: Mapping[str, str] | None = None
) -> WorkloadMeta:
    """For ``kube-inject``: the object holding the pod template is the workload (a
    ``service.istio.io/workload-name`` label on the template names it instead)."""
    metadata = obj.get("metadata") or {}
    if obj.get("kind") == "Pod":
        meta = workload_of_pod(metadata, namespace)
    else:
        meta = WorkloadMeta(
            str(metadata.get("name", "")), namespace, str(obj.get("kind", "")), str(obj.get("apiVersion", ""))
        )
    named = (template_labels or {}).get(WORKLOAD_NAME_LABEL)
    if not named:
        return meta
    return WorkloadMeta(named, meta.namespace, meta.kind, meta.api_version, meta.owner_name or meta.name)
