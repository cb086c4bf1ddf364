"""The workloads an analyzed input knows: Pods, WorkloadEntries, and the pod templates of
Deployments and the like (what a cluster would run from them).

Every check that asks "does this select a workload?" reads this one list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.analysis.inputs import Inputs
from controlplane.model.kubernetes import Pod
from controlplane.model.service_entry import WorkloadEntry

WORKLOAD_TEMPLATES = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


@dataclass(frozen=True, slots=True)
class Workload:
    namespace: str
    labels: Mapping[str, str]
    kind: str = ""  # Pod, WorkloadEntry, Deployment, ...
    name: str = ""
    ips: tuple[str, ...] = ()
    service_account: str = ""

    @property
    def display(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.kind else self.namespace


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items()}


def workloads_of(inputs: Inputs) -> list[Workload]:
    return list(_workloads(inputs))


def _workloads(inputs: Inputs) -> Iterator[Workload]:
    for parsed in inputs.valid(Pod.KIND):
        pod = parsed.resource
        assert isinstance(pod, Pod)
        yield Workload(
            pod.meta.namespace,
            dict(pod.meta.labels),
            Pod.KIND,
            pod.meta.name,
            pod.ips,
            pod.spec.service_account_name,
        )
    for parsed in inputs.valid(WorkloadEntry.KIND):
        entry = parsed.resource
        assert isinstance(entry, WorkloadEntry)
        yield Workload(
            entry.meta.namespace,
            dict(entry.spec.labels),
            WorkloadEntry.KIND,
            entry.meta.name,
            (entry.spec.address,) if entry.spec.address else (),
            entry.spec.service_account,
        )
    for parsed in inputs.raw(WORKLOAD_TEMPLATES):
        body = parsed.document.body
        meta = _dict(body.get("metadata"))
        namespace = str(
            meta.get("namespace") or (parsed.key.namespace if parsed.key else "default")
        )
        spec = _dict(body.get("spec"))
        template = _dict(spec.get("template"))
        pod_spec = _dict(template.get("spec"))
        yield Workload(
            namespace,
            _labels(_dict(template.get("metadata")).get("labels")),
            str(body.get("kind")),
            str(meta.get("name") or ""),
            (),
            str(pod_spec.get("serviceAccountName") or "default"),
        )
