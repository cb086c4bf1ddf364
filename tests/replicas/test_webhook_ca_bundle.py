"""The injector's MutatingWebhookConfiguration trusts the CA root: the leader writes it into
the caBundle of Istio's injector webhooks (and only those), and restores it when edited."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from controlplane.cluster.webhook_ca_bundle import WebhookCaBundlePatcher
from tests.harness.wait import wait_for
from tests.kube_double.server import KubeApiDouble
from tests.replicas.cluster import (
    INJECTOR_OTHER_WEBHOOK,
    MUTATING_WEBHOOKS,
    LeaderFlag,
    api_client_for,
    running,
    shipped_webhook_configuration,
)

ROOT = "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n"


def bundles(kube: KubeApiDouble) -> dict[str, str | None]:
    found = kube.get(MUTATING_WEBHOOKS, "", "istio-sidecar-injector")
    assert found is not None
    return {w["name"]: w["clientConfig"].get("caBundle") for w in found["webhooks"]}


@pytest.fixture
def patcher(kube: KubeApiDouble, leading: LeaderFlag) -> Iterator[WebhookCaBundlePatcher]:
    with running(WebhookCaBundlePatcher(api_client_for(kube), lambda: ROOT, leading,
                                        resync_seconds=0.3)) as patcher:
        yield patcher


def test_the_leader_sets_the_root_on_the_injector_webhooks_only(kube, patcher, leading):
    kube.upsert(MUTATING_WEBHOOKS, shipped_webhook_configuration())
    wait_for(lambda: patcher.rounds >= 3, message="rounds")
    assert set(bundles(kube).values()) == {None} and patcher.writes == 0  # not leading
    leading.value = True
    patcher.wake()
    expected = base64.b64encode(ROOT.encode()).decode()
    wait_for(lambda: bundles(kube)["namespace.sidecar-injector.istio.io"] == expected,
             message="caBundle set")
    assert bundles(kube)[INJECTOR_OTHER_WEBHOOK] is None
    # Nothing else of the configuration was touched.
    stored = kube.get(MUTATING_WEBHOOKS, "", "istio-sidecar-injector")
    assert stored is not None
    original = shipped_webhook_configuration()
    for webhook in stored["webhooks"]:
        webhook["clientConfig"].pop("caBundle", None)
    assert stored["webhooks"] == original["webhooks"]
    # Settled: later rounds write nothing.
    wait_for(lambda: patcher.writes == 1, message="the write counted")
    rounds = patcher.rounds
    wait_for(lambda: patcher.rounds >= rounds + 2, message="more rounds")
    assert patcher.writes == 1


def test_an_edited_ca_bundle_is_restored(kube, patcher, leading):
    leading.value = True
    patcher.wake()
    wait_for(lambda: patcher.rounds >= 2, message="rounds without a configuration")
    assert patcher.writes == 0  # not installed yet: nothing to write, no failure
    kube.upsert(MUTATING_WEBHOOKS, shipped_webhook_configuration())
    expected = base64.b64encode(ROOT.encode()).decode()
    wait_for(lambda: bundles(kube)["namespace.sidecar-injector.istio.io"] == expected,
             message="set once installed")
    edited = kube.get(MUTATING_WEBHOOKS, "", "istio-sidecar-injector")
    assert edited is not None
    edited["webhooks"][0]["clientConfig"]["caBundle"] = base64.b64encode(b"other").decode()
    kube.upsert(MUTATING_WEBHOOKS, edited)
    wait_for(lambda: bundles(kube)["namespace.sidecar-injector.istio.io"] == expected,
             message="restored at resync")
