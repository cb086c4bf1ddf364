"""Which services select a workload: the index by selector finds what a scan of every
service finds, in the same order, and lives exactly as long as the services it indexes."""

from __future__ import annotations

import itertools

from controlplane.model.labels import service_selects
from controlplane.model.mesh import MeshConfig
from controlplane.sources.memory import MemorySource
from controlplane.store import Store
from controlplane.translate.index.service_index import build_service_index, update_service_index

MESH = MeshConfig()


def service(name: str, namespace: str, selector: dict[str, str] | None) -> dict:
    spec: dict = {"ports": [{"name": "http", "port": 9080}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def service_entry(name: str, namespace: str, labels: dict[str, str]) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hosts": [f"{name}.example.com"], "location": "MESH_INTERNAL", "resolution": "STATIC",
                 "ports": [{"name": "http", "number": 80, "protocol": "HTTP"}],
                 "workloadSelector": {"labels": labels}},
    }


def pod(name: str, ip: str, labels: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "a", "labels": labels},
        "status": {"podIP": ip, "phase": "Running"},
    }


def endpoint_slice(svc: str, ip: str) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{svc}-1", "namespace": "a", "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 9080}],
        "endpoints": [{"addresses": [ip]}],
    }


SERVICES = [
    service("reviews", "a", {"app": "reviews"}),
    service("reviews-v2", "a", {"app": "reviews", "version": "v2"}),
    service("by-version", "a", {"version": "v2"}),  # indexed by a key the others lack
    service("zz-tier", "a", {"tier": "web", "app": "reviews"}),  # first label in order: app
    service("headless-by-hand", "a", None),  # no selector: selects nothing
    service("reviews", "b", {"app": "reviews"}),  # same selector, another namespace
    service_entry("vm-reviews", "a", {"app": "reviews", "version": "v2"}),
]

LABEL_SETS = [
    {}, {"app": "reviews"}, {"app": "reviews", "version": "v2"}, {"version": "v2"},
    {"app": "reviews", "version": "v2", "tier": "web"}, {"app": "reviews", "tier": "db"},
    {"app": "ratings", "version": "v2"}, {"tier": "web"},
]


def scan(index, namespace: str, labels: dict[str, str]) -> list:
    """What the index must answer: every service, in order, tested one by one."""
    return [s for s in index.services if s.namespace == namespace and service_selects(s.selector, labels)]


def test_the_services_found_are_those_a_scan_of_every_service_finds_in_its_order() -> None:
    store = Store()
    MemorySource(store).apply(*SERVICES)
    index = build_service_index(store.snapshot, MESH)
    for namespace, labels in itertools.product(("a", "b", "c"), LABEL_SETS):
        assert index.selecting(namespace, labels) == scan(index, namespace, labels), (namespace, labels)
    # the lookups above cover each kind of answer: several, one, none
    names = [s.name for s in index.selecting("a", {"app": "reviews", "version": "v2", "tier": "web"})]
    assert sorted(names) == ["by-version", "reviews", "reviews-v2", "vm-reviews", "zz-tier"]
    assert [s.name for s in index.selecting("b", {"app": "reviews"})] == ["reviews"]
    assert index.selecting("a", {"tier": "web"}) == []


def test_an_endpoint_change_keeps_the_index_and_a_service_change_rebuilds_it() -> None:
    store = Store()
    source = MemorySource(store)
    source.apply(*SERVICES)
    index = build_service_index(store.snapshot, MESH)

    before = store.snapshot
    source.apply(pod("reviews-1", "10.0.0.1", {"app": "reviews"}), endpoint_slice("reviews", "10.0.0.1"))
    after = store.snapshot
    update = update_service_index(index, after, MESH, after.changed_since(before, after.kinds_changed_since(before)))
    assert update.index.by_selector is index.by_selector  # shared: services did not change

    source.apply(service("ratings", "a", {"app": "reviews", "version": "v2"}))
    rebuilt = build_service_index(store.snapshot, MESH)
    labels = {"app": "reviews", "version": "v2"}
    assert "ratings" in [s.name for s in rebuilt.selecting("a", labels)]
    assert rebuilt.selecting("a", labels) == scan(rebuilt, "a", labels)
