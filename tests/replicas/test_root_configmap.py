"""istio-ca-root-cert in every namespace, written by the leader only, and restored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controlplane.cluster.root_configmap import RootCertPublisher
from tests.harness.wait import wait_for
from tests.kube_double.server import KubeApiDouble
from tests.replicas.cluster import CONFIGMAPS, NAMESPACES, LeaderFlag, api_client_for, running

ROOT = "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n"


@pytest.fixture
def publisher(kube: KubeApiDouble, leading: LeaderFlag) -> Iterator[RootCertPublisher]:
    names = lambda: [n["metadata"]["name"] for n in kube.objects(NAMESPACES)]
    with running(RootCertPublisher(api_client_for(kube), names, lambda: ROOT, leading,
                                   resync_seconds=0.3)) as publisher:
        yield publisher


def published(kube: KubeApiDouble) -> dict[str, str]:
    return {c["metadata"]["namespace"]: c["data"]["root-cert.pem"]
            for c in kube.objects(CONFIGMAPS) if c["metadata"]["name"] == "istio-ca-root-cert"}


def test_only_the_leader_publishes_in_every_namespace(kube, publisher, leading):
    wait_for(lambda: publisher.rounds >= 3, message="rounds")
    assert published(kube) == {} and publisher.writes == 0  # not leading: nothing written
    leading.value = True
    publisher.wake()
    # Every namespace but Kubernetes' own, as istiod's namespace controller.
    wait_for(lambda: published(kube) == {"default": ROOT, "istio-system": ROOT},
             message="the root in every namespace")
    kube.upsert(NAMESPACES, {"metadata": {"name": "bookinfo"}})
    publisher.wake()
    wait_for(lambda: published(kube).get("bookinfo") == ROOT, message="a new namespace")


def test_an_edited_configmap_is_restored(kube, publisher, leading):
    leading.value = True
    publisher.wake()
    wait_for(lambda: "default" in published(kube), message="published")
    edited = kube.get(CONFIGMAPS, "default", "istio-ca-root-cert")
    edited["data"]["root-cert.pem"] = "tampered"
    kube.upsert(CONFIGMAPS, edited)
    wait_for(lambda: published(kube)["default"] == ROOT, message="restored at resync")
