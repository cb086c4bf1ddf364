"""Sidecar injection, as Istio's injector: which pods (``policy``), what is decided for each
(``params``: capture, proxy config, labels, annotations), what is added (``template``), the
change as a JSON patch (``mutate``), offline over YAML documents (``documents``,
``controlplane kube-inject``) and as a mutating admission webhook (``webhook``)."""

from __future__ import annotations

from controlplane.inject.documents import inject_documents, inject_object
from controlplane.inject.mutate import Injected, inject_template, json_patch
from controlplane.inject.params import InjectionError, InjectorSettings, PodDecisions, decide
from controlplane.inject.policy import Decision, injection_required, webhook_selects
from controlplane.inject.workload import WorkloadMeta, workload_of_object, workload_of_pod

__all__ = [
    "Decision",
    "Injected",
    "InjectionError",
    "InjectorSettings",
    "PodDecisions",
    "WorkloadMeta",
    "decide",
    "inject_documents",
    "inject_object",
    "inject_template",
    "injection_required",
    "json_patch",
    "webhook_selects",
    "workload_of_object",
    "workload_of_pod",
]
