"""A Kubernetes API test double serving what replicas of the control plane read and write."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from controlplane.cluster.worker import LeaderWorker
from tests.harness.kube import (
    CONFIGMAPS,
    DESTINATION_RULES,
    KINDS,
    LEASES,
    MUTATING_WEBHOOKS,
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICES,
    SIDECARS,
    SLICES,
    VIRTUAL_SERVICES,
    api_client_for,
    kubeconfig,
)
from tests.kube_double.server import KubeApiDouble

__all__ = [  # the paths and clients of tests.harness.kube, for the replica tests and benchmarks
    "COLLECTIONS",
    "CONFIGMAPS",
    "DESTINATION_RULES",
    "LEASES",
    "MUTATING_WEBHOOKS",
    "NAMESPACES",
    "PODS",
    "SECRETS",
    "SERVICES",
    "SIDECARS",
    "SLICES",
    "VIRTUAL_SERVICES",
    "LeaderFlag",
    "api_client_for",
    "cluster_double",
    "kubeconfig",
]

SHIPPED_WEBHOOK = Path(__file__).parents[2] / "deploy" / "kubernetes" / "webhook.yaml"
INJECTOR_OTHER_WEBHOOK = "validation.example.com"

COLLECTIONS = KINDS  # everything a replica reads or writes


def cluster_double() -> KubeApiDouble:
    double = KubeApiDouble()
    for path, (kind, api_version) in COLLECTIONS.items():
        double.serve(path, kind, api_version)
    for name in ("istio-system", "default", "kube-system"):
        double.upsert(NAMESPACES, {"metadata": {"name": name}})
    return double


def shipped_webhook_configuration() -> dict[str, Any]:
    """deploy/kubernetes/webhook.yaml, with a webhook of someone else's
    (``INJECTOR_OTHER_WEBHOOK``) added."""
    configuration: dict[str, Any] = yaml.safe_load(SHIPPED_WEBHOOK.read_text())
    other = copy.deepcopy(configuration["webhooks"][0])
    other["name"] = INJECTOR_OTHER_WEBHOOK
    configuration["webhooks"].append(other)
    return configuration


class LeaderFlag:
    """``is_leader`` for a worker under test: set ``value`` to lead or not."""

    def __init__(self, value: bool = False) -> None:
        self.value = value

    def __call__(self) -> bool:
        return self.value


Worker = TypeVar("Worker", bound=LeaderWorker)


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    """A leader-only worker's thread, stopped whatever the test does."""
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
