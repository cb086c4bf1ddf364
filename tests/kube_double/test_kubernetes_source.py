"""The Kubernetes source, through the official ``kubernetes`` client, against the
API server test double (tests/kube_double/server.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.model.base import ResourceKey
from controlplane.sources.kubernetes import DEFAULT_KINDS, KubernetesSource, api_client_from_config
from controlplane.store import ChangeSet, Store
from tests.kube_double.conftest import ENDPOINTS, SERVICES, SLICES, VIRTUAL_SERVICES
from tests.kube_double.server import KubeApiDouble
from tests.kube_double.support import FAST, api_client_for, service
from tests.sources.helpers import wait_for

KINDS = tuple(
    k for k in DEFAULT_KINDS if k.name in ("Service", "EndpointSlice", "VirtualService", "Gateway")
)


def svc_key(name: str) -> ResourceKey:
    return ResourceKey("Service", "default", name)


def port_of(store: Store, name: str) -> int | None:
    found = store.snapshot.get(svc_key(name))
    return None if found is None else found.spec.ports[0].port  # type: ignore[attr-defined]


def names(store: Store, kind: str = "Service") -> list[str]:
    return sorted(k.name for k in store.snapshot if k.kind == kind)


@pytest.fixture
def running(kube: KubeApiDouble) -> Iterator[tuple[Store, KubernetesSource]]:
    kube.upsert(SERVICES, service("alpha", 1))
    kube.upsert(SERVICES, service("beta"))
    store = Store()
    source = KubernetesSource(store, api_client_for(kube), kinds=KINDS, options=FAST)
    source.start()
    try:
        assert source.wait_synced(10)
        wait_for(lambda: kube.open_watches >= 3, what="watches open")
        yield store, source
    finally:
        source.stop()


def watch_down(kube: KubeApiDouble) -> None:
    """Cut the watches and refuse new ones until watch_up()."""
    before = len(kube.watch_requests(SERVICES))
    kube.refuse_watches = True
    kube.drop_watches()
    wait_for(lambda: len(kube.watch_requests(SERVICES)) > before, what="a refused reconnect")


def test_list_then_live_events(
    kube: KubeApiDouble, running: tuple[Store, KubernetesSource]
) -> None:
    store, _ = running
    assert names(store) == ["alpha", "beta"]
    # camelCase API form reaches the model: targetPort was read.
    assert store.snapshot[svc_key("alpha")].spec.ports[0].target_port == 2  # type: ignore[attr-defined]
    kube.upsert(SERVICES, service("gamma"))
    kube.upsert(SERVICES, service("alpha", 5))
    kube.delete(SERVICES, "default", "beta")
    wait_for(
        lambda: names(store) == ["alpha", "gamma"] and port_of(store, "alpha") == 5,
        what="live events",
    )
    (watch,) = kube.watch_requests(SERVICES)
    assert watch.query["allowWatchBookmarks"] == "true"
    assert int(watch.query["resourceVersion"]) >= 1002  # from the list, not "0": no replay
    assert len(kube.list_requests(SERVICES)) == 1


def test_changes_while_the_watch_is_down_all_arrive_once(
    kube: KubeApiDouble, running: tuple[Store, KubernetesSource]
) -> None:
    store, _ = running
    seen: list[ChangeSet] = []
    store.subscribe(seen.append)
    last_seen = next(r for r in reversed(kube.requests) if r.path == SERVICES and r.watch).query[
        "resourceVersion"
    ]
    watch_down(kube)
    kube.upsert(SERVICES, service("delta"))
    kube.upsert(SERVICES, service("alpha", 2))
    kube.upsert(SERVICES, service("alpha", 3))
    kube.delete(SERVICES, "default", "beta")
    kube.refuse_watches = False
    wait_for(
        lambda: names(store) == ["alpha", "delta"] and port_of(store, "alpha") == 3, what="catch-up"
    )
    # Every event exactly once, in order; resumed from the last resourceVersion, no relist.
    alpha = [c.changes[svc_key("alpha")] for c in seen if svc_key("alpha") in c.changes]
    assert [(c.old.spec.ports[0].port, c.new.spec.ports[0].port) for c in alpha] == [(1, 2), (2, 3)]  # type: ignore[union-attr]
    assert sum(1 for c in seen for k in c.added if k == svc_key("delta")) == 1
    assert sum(1 for c in seen for k in c.removed if k == svc_key("beta")) == 1
    assert len(kube.list_requests(SERVICES)) == 1
    resumed = [r for r in kube.watch_requests(SERVICES) if r.query["resourceVersion"] == last_seen]
    assert len(resumed) >= 2


@pytest.mark.parametrize("expire_mode", ["event", "http"])
def test_410_gone_relists_and_deletes_what_vanished(
    kube: KubeApiDouble, running: tuple[Store, KubernetesSource], expire_mode: str
) -> None:
    store, _ = running
    seen: list[ChangeSet] = []
    store.subscribe(seen.append)
    kube.expire_mode = expire_mode
    watch_down(kube)
    kube.delete(SERVICES, "default", "beta")
    kube.upsert(SERVICES, service("epsilon"))
    kube.compact()  # the history of those changes is gone: only a relist can see them
    kube.refuse_watches = False
    wait_for(lambda: names(store) == ["alpha", "epsilon"], what="relist")
    assert len(kube.list_requests(SERVICES)) == 2
    assert [k for c in seen for k in c.removed] == [svc_key("beta")]
    assert [k for c in seen for k in c.added] == [svc_key("epsilon")]
    # And the watch goes on from the relist's resourceVersion.
    kube.upsert(SERVICES, service("zeta"))
    wait_for(lambda: "zeta" in names(store), what="event after relist")


def test_bookmark_moves_the_resume_point(
    kube: KubeApiDouble, running: tuple[Store, KubernetesSource]
) -> None:
    store, source = running
    services = next(r for r in source.reflectors if r.source_id == "kubernetes/Service")
    rv = kube.bookmark()
    wait_for(lambda: services.resource_version == rv, what="bookmark seen")
    kube.compact()  # history before the bookmark is gone, but we no longer need it
    watch_down(kube)
    kube.refuse_watches = False
    wait_for(
        lambda: any(r.query.get("resourceVersion") == rv for r in kube.watch_requests(SERVICES)),
        what="resume",
    )
    kube.upsert(SERVICES, service("eta"))
    wait_for(lambda: "eta" in names(store), what="event after resume")
    assert len(kube.list_requests(SERVICES)) == 1  # no relist was needed


def test_missing_crds_only_warn(
    kube: KubeApiDouble, running: tuple[Store, KubernetesSource], caplog: pytest.LogCaptureFixture
) -> None:
    store, source = running
    assert source.missing == ("kubernetes/Gateway",)
    kube.upsert(
        VIRTUAL_SERVICES,
        {
            "metadata": {"name": "vs", "namespace": "default"},
            "spec": {"hosts": ["alpha"], "http": [{"route": [{"destination": {"host": "alpha"}}]}]},
        },
    )
    wait_for(lambda: names(store, "VirtualService") == ["vs"], what="a CRD that is installed")
    # The CRD appears later: it is found without a restart.
    kube.serve("/apis/networking.istio.io/v1/gateways", "Gateway", "networking.istio.io/v1")
    kube.upsert(
        "/apis/networking.istio.io/v1/gateways",
        {
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
                ],
            },
        },
    )
    wait_for(lambda: names(store, "Gateway") == ["gw"], what="late CRD")
    assert source.missing == ()


def test_missing_crd_is_a_logged_warning(
    kube: KubeApiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store()
    kinds = tuple(k for k in DEFAULT_KINDS if k.name in ("Service", "Telemetry"))
    with (
        caplog.at_level(logging.WARNING),
        KubernetesSource(store, api_client_for(kube), kinds=kinds, options=FAST) as source,
    ):
        assert source.wait_synced(10)
        assert source.missing == ("kubernetes/Telemetry",)
    warnings = [r for r in caplog.records if "kubernetes/Telemetry" in r.getMessage()]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)
    # It tried every version Istio has served before giving up.
    tried = {r.path for r in kube.requests if "telemetr" in r.path}
    assert tried >= {
        "/apis/telemetry.istio.io/v1/telemetries",
        "/apis/telemetry.istio.io/v1alpha1/telemetries",
    }


def test_invalid_object_keeps_last_valid_version(
    kube: KubeApiDouble, running: tuple[Store, KubernetesSource]
) -> None:
    store, source = running
    broken = service("alpha", 7)
    broken["spec"]["ports"][0]["port"] = "not-a-port"
    kube.upsert(SERVICES, broken)
    kube.upsert(SERVICES, service("theta"))  # a later event, to know the broken one was handled
    wait_for(lambda: "theta" in names(store), what="later event")
    assert port_of(store, "alpha") == 1
    (error,) = [e for e in source.errors if e.is_error]
    assert error.key == svc_key("alpha") and error.path.startswith("spec.ports[0].port")
    kube.upsert(SERVICES, service("alpha", 8))
    wait_for(lambda: port_of(store, "alpha") == 8 and not source.errors, what="fixed")


def test_endpoints_when_endpointslices_are_not_served(tmp_path: Path) -> None:
    double = KubeApiDouble()
    double.serve(ENDPOINTS, "Endpoints", "v1")
    double.upsert(
        ENDPOINTS,
        {
            "metadata": {"name": "alpha", "namespace": "default"},
            "subsets": [
                {"addresses": [{"ip": "10.1.0.1"}], "ports": [{"name": "http", "port": 8080}]}
            ],
        },
    )
    with double:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            f"""apiVersion: v1
kind: Config
clusters: [{{name: double, cluster: {{server: "{double.url}"}}}}]
users: [{{name: tester, user: {{token: test-token}}}}]
contexts: [{{name: double, context: {{cluster: double, user: tester}}}}]
current-context: double
"""
        )
        store = Store()
        kinds = tuple(k for k in DEFAULT_KINDS if k.name == "EndpointSlice")
        with KubernetesSource(
            store, api_client_from_config(kubeconfig), kinds=kinds, options=FAST
        ) as source:
            assert source.wait_synced(10)
            assert [str(k) for k in store.snapshot] == ["Endpoints default/alpha"]
        assert {r.path for r in double.requests} >= {SLICES, ENDPOINTS}


def test_the_client_keeps_a_connection_per_watch(tmp_path: Path) -> None:
    """Every watched kind holds a connection of the one client open: a smaller pool (urllib3's
    default, 5 per CPU) discards connections and reopens them."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        'clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]\n'
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
    )
    api = api_client_from_config(kubeconfig)
    assert api.configuration.host == "http://127.0.0.1:1"
    assert api.rest_client.pool_manager.connection_pool_kw["maxsize"] > len(DEFAULT_KINDS)
