"""``kube-inject``: inject every pod template in Kubernetes YAML documents, offline, as
``istioctl kube-inject`` does (Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
CronJobs, ReplicationControllers, DeploymentConfigs, and Lists of them). Other documents pass
through unchanged."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.inject.mutate import inject_template
from controlplane.inject.params import InjectorSettings
from controlplane.inject.policy import injection_required
from controlplane.inject.workload import workload_of_object

log = logging.getLogger("controlplane.inject")

MAX_LIST_ITEMS = 10_000


@dataclass(frozen=True)
class TemplateRef:
    """Where a kind keeps its pod template: the metadata and the pod spec (CronJob puts the
    metadata on the job template, as Istio's kube-inject does)."""

    metadata_path: tuple[str, ...]
    spec_path: tuple[str, ...]


_POD = TemplateRef(("metadata",), ("spec",))
_TEMPLATE = TemplateRef(("spec", "template", "metadata"), ("spec", "template", "spec"))
_CRONJOB = TemplateRef(("spec", "jobTemplate", "metadata"), ("spec", "jobTemplate", "spec", "template", "spec"))
TEMPLATES: Mapping[str, TemplateRef] = {
    "Pod": _POD,
    "Deployment": _TEMPLATE,
    "ReplicaSet": _TEMPLATE,
    "StatefulSet": _TEMPLATE,
    "DaemonSet": _TEMPLATE,
    "Job": _TEMPLATE,
    "ReplicationController": _TEMPLATE,
    "DeploymentConfig": _TEMPLATE,
    "CronJob": _CRONJOB,
}


def _get(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)  # type: ignore[assignment]
    return obj


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = value


def inject_object(obj: Mapping[str, Any], settings: InjectorSettings, where: str = "") -> dict[str, Any]:
    """One document, injected when it holds a pod template that needs a sidecar."""
    kind = str(obj.get("kind", ""))
    if kind == "List":
        items = list(obj.get("items") or ())[:MAX_LIST_ITEMS]
        return {**obj, "items": [inject_object(i, settings, f"{where}items[{n}].") for n, i in enumerate(items)]}
    ref = TEMPLATES.get(kind)
    if ref is None:
        return dict(obj)
    metadata = _get(obj, ref.metadata_path) or {}
    spec = _get(obj, ref.spec_path) or {}
    namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
    name = (obj.get("metadata") or {}).get("name", "")
    decision = injection_required(metadata, spec, namespace=namespace, policy=settings.policy)
    if not decision.inject:
        log.info("skipping injection of %s %s/%s: %s", kind, namespace, name, decision.reason)
        return dict(obj)
    prefix = f"{kind} {namespace}/{name}: {where}{'.'.join(ref.metadata_path)}"
    injected = inject_template(metadata, spec, workload_of_object(obj, namespace, metadata.get("labels")), settings, prefix)
    out = copy.deepcopy(dict(obj))
    _set(out, ref.metadata_path, injected.metadata)
    _set(out, ref.spec_path, injected.spec)
    return out


def inject_documents(documents: Iterable[Any], settings: InjectorSettings) -> list[Any]:
    return [inject_object(d, settings) if isinstance(d, Mapping) else d for d in documents]
