"""The mesh generator: S services, E endpoints each, V VirtualServices, D DestinationRules, in N
namespaces, as Kubernetes/Istio documents (dicts), a YAML folder, or a store Snapshot.

A ``MeshState`` is immutable; the scenario mutations (add/remove endpoints, change route weights,
add a service) return a new state plus the names of the services whose file changed, so a folder
target rewrites only those files and an in-process target re-translates only what it must.

Every service gets its own file ``<ns>/<svc>.yaml`` holding its Service, Pods, EndpointSlice and,
when it has them, its DestinationRule (subsets v1/v2) and VirtualService (header match to v2, a
weighted v1/v2 split otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

DOMAIN = "svc.cluster.local"
BASE_PORT = 8080
INITIAL_WEIGHTS = (90, 10)


@dataclass(frozen=True)
class MeshSpec:
    services: int = 100
    endpoints: int = 4  # per service
    virtual_services: int = 20
    destination_rules: int = 20
    namespaces: int = 10
    ports: int = 1  # HTTP ports per service: 8080, 8081, ...

    def __post_init__(self) -> None:
        if not 1 <= self.endpoints <= 100:
            raise ValueError("endpoints per service must be 1..100 (churn adds more above them)")
        if self.virtual_services > self.destination_rules:
            raise ValueError("every VirtualService routes to subsets: need as many DestinationRules")


@dataclass(frozen=True)
class Endpoint:
    ip: str
    version: str  # pod label: v1 or v2 (the subsets)


@dataclass(frozen=True)
class ServiceState:
    index: int
    endpoints: tuple[Endpoint, ...]
    weights: tuple[int, int] | None  # VirtualService v1/v2 split; None = no VirtualService
    has_rule: bool  # DestinationRule with subsets v1/v2
    added: int = 0  # endpoints added so far by churn (gives each a fresh address)

    @property
    def name(self) -> str:
        return f"svc-{self.index}"


@dataclass(frozen=True)
class MeshState:
    spec: MeshSpec
    services: tuple[ServiceState, ...]

    def namespace(self, index: int) -> str:
        return f"ns-{index % self.spec.namespaces}"

    def hostname(self, index: int) -> str:
        return f"svc-{index}.{self.namespace(index)}.{DOMAIN}"

    def ports(self) -> tuple[int, ...]:
        return tuple(BASE_PORT + p for p in range(self.spec.ports))

    def cluster_name(self, index: int, port: int = BASE_PORT, subset: str = "") -> str:
        return f"outbound|{port}|{subset}|{self.hostname(index)}"

    def service(self, index: int) -> ServiceState:
        return self.services[index]


def pod_ip(service: int, slot: int) -> str:
    """Unique per (service, slot) for 64,000 services x 250 slots."""
    return f"10.{100 + service // 250}.{service % 250}.{slot + 1}"


def cluster_ip(service: int) -> str:
    return f"10.{96 + service // 62500}.{(service // 250) % 250}.{service % 250 + 1}"


def generate(spec: MeshSpec) -> MeshState:
    services = tuple(
        ServiceState(
            index=i,
            endpoints=tuple(
                Endpoint(pod_ip(i, j), "v1" if j % 2 == 0 else "v2") for j in range(spec.endpoints)
            ),
            weights=INITIAL_WEIGHTS if i < spec.virtual_services else None,
            has_rule=i < spec.destination_rules,
        )
        for i in range(spec.services)
    )
    return MeshState(spec, services)


# --- mutations (each returns the new state and the indexes of the services that changed) ------


def churn_endpoints(state: MeshState, index: int) -> tuple[MeshState, Endpoint, Endpoint | None]:
    """Add a fresh endpoint to service ``index`` and remove its oldest original one (if any left).

    Added addresses are never reused or removed, so "the new address is present and the removed
    one absent" identifies exactly the new version of the ClusterLoadAssignment."""
    svc = state.services[index]
    slot = state.spec.endpoints + svc.added
    if slot >= 250:
        raise ValueError(f"service {index}: no free endpoint address left for churn")
    added = Endpoint(pod_ip(index, slot), "v1" if slot % 2 == 0 else "v2")
    originals = [e for e in svc.endpoints if _slot(e.ip) < state.spec.endpoints]
    removed = originals[0] if len(originals) > 1 else None  # keep one original at least
    kept = tuple(e for e in svc.endpoints if e != removed) + (added,)
    return _with_service(state, replace(svc, endpoints=kept, added=svc.added + 1)), added, removed


def set_weights(state: MeshState, index: int, weights: tuple[int, int]) -> MeshState:
    svc = state.services[index]
    if svc.weights is None:
        raise ValueError(f"service {index} has no VirtualService")
    if sum(weights) != 100:
        raise ValueError("weights must add up to 100")
    return _with_service(state, replace(svc, weights=weights))


def toggle_rule(state: MeshState, index: int) -> MeshState:
    """Give service ``index`` a DestinationRule (subsets v1/v2), or take its away."""
    svc = state.services[index]
    if svc.weights is not None and svc.has_rule:
        raise ValueError(f"service {index}: its VirtualService routes to the rule's subsets")
    return _with_service(state, replace(svc, has_rule=not svc.has_rule))


def add_service(state: MeshState) -> tuple[MeshState, int]:
    """Append a service (with DestinationRule, no VirtualService); returns its index."""
    i = len(state.services)
    svc = ServiceState(
        index=i,
        endpoints=tuple(
            Endpoint(pod_ip(i, j), "v1" if j % 2 == 0 else "v2") for j in range(state.spec.endpoints)
        ),
        weights=None,
        has_rule=True,
    )
    return MeshState(state.spec, state.services + (svc,)), i


def _slot(ip: str) -> int:
    return int(ip.rsplit(".", 1)[1]) - 1


def _with_service(state: MeshState, svc: ServiceState) -> MeshState:
    services = list(state.services)
    services[svc.index] = svc
    return MeshState(state.spec, tuple(services))


# --- documents ----------------------------------------------------------------------------


def service_documents(state: MeshState, index: int) -> list[dict[str, Any]]:
    svc = state.services[index]
    name, ns = svc.name, state.namespace(index)
    ports = [{"name": f"http-{p}", "port": p, "targetPort": p, "protocol": "TCP"} for p in state.ports()]
    docs: list[dict[str, Any]] = [{
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"clusterIP": cluster_ip(index), "selector": {"app": name}, "ports": ports},
    }]
    slice_endpoints = []
    for e in svc.endpoints:
        pod = f"{name}-{e.version}-{_slot(e.ip)}"
        docs.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": ns, "labels": {"app": name, "version": e.version}},
            "spec": {"serviceAccountName": name, "containers": [{"name": "app", "image": "app"}]},
            "status": {"podIP": e.ip, "phase": "Running"},
        })
        slice_endpoints.append({
            "addresses": [e.ip],
            "conditions": {"ready": True},
            "targetRef": {"kind": "Pod", "name": pod, "namespace": ns},
        })
    docs.append({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-slice", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": f"http-{p}", "port": p, "protocol": "TCP"} for p in state.ports()],
        "endpoints": slice_endpoints,
    })
    if svc.has_rule:
        docs.append({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"host": name,
                     "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}},
                     "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                 {"name": "v2", "labels": {"version": "v2"}}]},
        })
    if svc.weights is not None:
        w1, w2 = svc.weights
        docs.append({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"hosts": [name], "http": [
                {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                 "route": [{"destination": {"host": name, "subset": "v2"}}]},
                {"route": [{"destination": {"host": name, "subset": "v1"}, "weight": w1},
                           {"destination": {"host": name, "subset": "v2"}, "weight": w2}]},
            ]},
        })
    return docs


def documents(state: MeshState) -> Iterator[dict[str, Any]]:
    for i in range(len(state.services)):
        yield from service_documents(state, i)


def service_file(root: Path, state: MeshState, index: int) -> Path:
    return root / state.namespace(index) / f"svc-{index}.yaml"


def write_service(root: Path, state: MeshState, index: int) -> Path:
    """Write one service's file atomically (hidden temp file, then rename): a watcher never
    reads half a file."""
    path = service_file(root, state, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    text = yaml.dump_all(service_documents(state, index), Dumper=_dumper(), sort_keys=False)
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_folder(root: Path, state: MeshState, indexes: Iterable[int] | None = None) -> None:
    for i in range(len(state.services)) if indexes is None else indexes:
        write_service(root, state, i)


def _dumper() -> type:
    return getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def snapshot(state: MeshState, indexes: Iterable[int] | None = None, version: int = 1) -> Any:
    """A store Snapshot of ``state`` (parsed and validated by the model), for in-process use;
    with ``indexes``, of those services only (enough to compute their endpoints alone)."""
    from controlplane.model.parse import parse
    from controlplane.store import Snapshot

    by_kind: dict[str, dict[Any, Any]] = {}
    for i in range(len(state.services)) if indexes is None else sorted(set(indexes)):
        for doc in service_documents(state, i):
            resource = parse(doc)
            by_kind.setdefault(resource.KIND, {})[resource.key] = resource
    return Snapshot(by_kind, version=version)
