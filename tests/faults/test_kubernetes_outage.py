"""The Kubernetes API is unreachable, then comes back with changes made meanwhile and its
history forgotten (410 Gone), while a real Envoy fed by ``controlplane serve --kubernetes``
carries steady traffic (issue 19, "Faults survived").

The API is the test double (tests/kube_double/server.py), reached through a kubeconfig. While
it is away the Service's EndpointSlice moves to another app, its VirtualService changes, one
Service (and its slice) is deleted and another added. Throughout, no request fails: the
control plane keeps serving what it had. After the API returns, the control plane's input is
exactly the API's objects (``/debug/configz``) and the Envoy converges to them.

The outage lasts ``KUBE_OUTAGE_SECONDS`` (default 3; the issue's figure is for 60, printed
with ``-s``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from controlplane.cluster.ca_secret import is_ca_secret
from tests.harness.bootstrap import bootstrapped_envoy
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.envoy import EnvoyProcess
from tests.harness.kube import SERVICES, SIDECARS, SLICES, VIRTUAL_SERVICES, kubeconfig
from tests.harness.kube_app import (
    CLIENT_IP,
    PORT,
    client_sidecar,
    endpoint_slice,
    reach,
    service,
    virtual_service,
)
from tests.harness.traffic import TrafficLoop
from tests.harness.upstream import HttpUpstream
from tests.harness.wait import wait_for
from tests.kube_double.outage import OUTAGE_SECONDS, outage
from tests.kube_double.server import KubeApiDouble

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

COLLECTIONS = {
    "/api/v1/namespaces": ("Namespace", "v1"),
    SERVICES: ("Service", "v1"),
    SLICES: ("EndpointSlice", "discovery.k8s.io/v1"),
    "/api/v1/pods": ("Pod", "v1"),
    "/api/v1/secrets": ("Secret", "v1"),
    VIRTUAL_SERVICES: ("VirtualService", "networking.istio.io/v1"),
    SIDECARS: ("Sidecar", "networking.istio.io/v1"),
}


@pytest.fixture
def kube() -> Iterator[KubeApiDouble]:
    double = KubeApiDouble()
    for path, (kind, api_version) in COLLECTIONS.items():
        double.serve(path, kind, api_version)
    with double:
        yield double


def api_keys(kube: KubeApiDouble) -> set[str]:
    """What the control plane's input should hold: every object but the CA's own Secret (the
    control plane created istio-ca-secret, and keeps it out of its store)."""
    return {
        f"{kind} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
        for path, (kind, _) in COLLECTIONS.items()
        for obj in kube.objects(path)
        if not is_ca_secret(obj, "istio-system")
    }


def input_keys(cp: ServedControlPlane) -> set[str]:
    status, body = cp.get("/debug/configz")
    assert status == 200, body
    return set(json.loads(body)["resources"])


def app_answers() -> int:
    status, upstream, _ = reach("app")
    return status if upstream in ("v1", "v2") else -1


def clusters_of(envoy: EnvoyProcess) -> set[str]:
    return envoy.active_cluster_names()


@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_envoy_serves_through_an_api_outage_and_converges_after_it(
    tmp_path: Path, kube: KubeApiDouble, mode: str
) -> None:
    config = tmp_path / "config"
    config.mkdir()  # empty: everything comes from the API
    with ExitStack() as stack:
        v1, v2, v3 = (stack.enter_context(HttpUpstream(n)) for n in ("v1", "v2", "v3"))
        kube.upsert(SIDECARS, client_sidecar())
        for name in ("app", "old"):
            kube.upsert(SERVICES, service(name))
            kube.upsert(SLICES, endpoint_slice(name, v1.port))
        kube.upsert(VIRTUAL_SERVICES, virtual_service("before"))
        cp = stack.enter_context(served_control_plane(
            tmp_path, config, "--kubernetes", "--kubeconfig",
            str(kubeconfig(tmp_path / "kubeconfig", kube.url)),
        ))  # fmt: skip
        envoy = stack.enter_context(bootstrapped_envoy(
            tmp_path, cp.ca_dir, cp.xds_tls_port, "client", address=CLIENT_IP,
            service_account="client",
        ))  # fmt: skip
        envoy.wait_ready()
        wait_for(lambda: reach("app") == (200, "v1", "before"), message="app through Envoy")
        assert input_keys(cp) == api_keys(kube)
        old_cluster = f"outbound|{PORT}||old.default.svc.cluster.local"
        assert old_cluster in clusters_of(envoy)

        traffic = stack.enter_context(TrafficLoop(app_answers, max_seconds=OUTAGE_SECONDS + 120))
        wait_for(lambda: traffic.succeeded_since(0) >= 20, message="traffic flowing")

        def changes() -> None:
            kube.upsert(SLICES, endpoint_slice("app", v2.port))
            kube.upsert(VIRTUAL_SERVICES, virtual_service("after"))
            kube.delete(SERVICES, "default", "old")
            kube.delete(SLICES, "default", "old-1")
            kube.upsert(SERVICES, service("new"))
            kube.upsert(SLICES, endpoint_slice("new", v3.port))

        during = traffic.count()
        back = outage(kube, mode, changes)
        served_while_away = traffic.succeeded_since(during)
        wait_for(lambda: input_keys(cp) == api_keys(kube), deadline=120, message="input = API")
        input_converged = time.monotonic() - back
        wait_for(
            lambda: (
                reach("app") == (200, "v2", "after")
                and reach("new")[:2] == (200, "v3")
                and old_cluster not in clusters_of(envoy)
            ),
            deadline=60,
            message="Envoy converged to the API's new state",
        )
        envoy_converged = time.monotonic() - back
        after = traffic.count()
        wait_for(lambda: traffic.succeeded_since(after) >= 20, message="traffic after")
        traffic.stop()
        print(
            f"\nFIGURE outage={OUTAGE_SECONDS:.0f}s mode={mode}: {traffic.count()} requests, "
            f"{len(traffic.failures())} failed ({served_while_away} served while the API was "
            f"away); input equal to the API {input_converged:.2f} s and Envoy converged "
            f"{envoy_converged:.2f} s after it came back"
        )
        assert envoy.stat("cluster_manager.cds.update_rejected") == 0
        assert envoy.stat("listener_manager.lds.update_rejected") == 0
    assert served_while_away > 0
    assert traffic.failures() == [], "the proxy serves throughout"
