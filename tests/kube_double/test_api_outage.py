"""The Kubernetes API is unreachable for a while (refusing connections, or accepting them and
never answering), Services, EndpointSlices and VirtualServices change meanwhile, and it comes
back having forgotten the history (410 Gone on the old resourceVersion).

With the source's default options (the backoff it runs with), the store ends equal to what the
API serves, object for object: nothing lost, nothing duplicated, the deleted gone, and the
objects nobody touched not even re-announced. ``-s`` prints how long after the API came back
the store converged.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from controlplane.model.base import ResourceKey
from controlplane.sources.kubernetes import DEFAULT_KINDS, KubernetesSource
from controlplane.sources.reflector import Reflector, ReflectorOptions
from controlplane.store import ChangeSet, Store
from tests.kube_double.conftest import SERVICES, SLICES, VIRTUAL_SERVICES
from tests.kube_double.outage import OUTAGE_SECONDS, differences, outage
from tests.kube_double.server import KubeApiDouble
from tests.kube_double.support import api_client_for, service
from tests.sources.helpers import wait_for

pytestmark = pytest.mark.slow

PATHS = {SERVICES: "Service", SLICES: "EndpointSlice", VIRTUAL_SERVICES: "VirtualService"}
KINDS = tuple(k for k in DEFAULT_KINDS if k.name in PATHS.values())


def endpoint_slice(service_name: str, *addresses: str) -> dict:
    return {
        "metadata": {
            "name": f"{service_name}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [a]} for a in addresses],
    }


def virtual_service(name: str, host: str, header: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "hosts": [host],
            "http": [{
                "route": [{"destination": {"host": host}}],
                "headers": {"response": {"set": {"x-route": header}}},
            }],
        },
    }  # fmt: skip


def key(kind: str, name: str) -> ResourceKey:
    return ResourceKey(kind, "default", name)


@pytest.fixture
def populated(kube: KubeApiDouble) -> Iterator[KubeApiDouble]:
    for name in ("alpha", "beta", "gamma"):
        kube.upsert(SERVICES, service(name))
        kube.upsert(SLICES, endpoint_slice(name, "10.1.0.1"))
    kube.upsert(VIRTUAL_SERVICES, virtual_service("alpha", "alpha", "before"))
    kube.upsert(VIRTUAL_SERVICES, virtual_service("beta", "beta", "before"))
    yield kube


def changes_while_away(kube: KubeApiDouble) -> set[ResourceKey]:
    """Updates (one object twice), additions and deletions of every kind; the keys touched."""
    kube.upsert(SERVICES, service("alpha", 81))
    kube.upsert(SERVICES, service("alpha", 82))
    kube.delete(SERVICES, "default", "beta")
    kube.upsert(SERVICES, service("delta"))
    kube.upsert(SLICES, endpoint_slice("alpha", "10.1.0.1", "10.1.0.2"))
    kube.delete(SLICES, "default", "beta-1")
    kube.upsert(SLICES, endpoint_slice("delta", "10.1.0.9"))
    kube.upsert(VIRTUAL_SERVICES, virtual_service("alpha", "alpha", "after"))
    kube.delete(VIRTUAL_SERVICES, "default", "beta")
    kube.upsert(VIRTUAL_SERVICES, virtual_service("delta", "delta", "new"))
    # Added and deleted while away: never seen at all.
    kube.upsert(SERVICES, service("ephemeral"))
    kube.delete(SERVICES, "default", "ephemeral")
    return {
        key("Service", "alpha"), key("Service", "beta"), key("Service", "delta"),
        key("EndpointSlice", "alpha-1"), key("EndpointSlice", "beta-1"),
        key("EndpointSlice", "delta-1"),
        key("VirtualService", "alpha"), key("VirtualService", "beta"),
        key("VirtualService", "delta"),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "expire_mode"), [("refuse", "event"), ("hang", "http"), ("refuse", "http")]
)
def test_changes_made_while_the_api_was_away_arrive_exactly_once(
    populated: KubeApiDouble, mode: str, expire_mode: str
) -> None:
    kube = populated
    store = Store()
    source = KubernetesSource(store, api_client_for(kube), kinds=KINDS, options=ReflectorOptions())
    touched: set[ResourceKey] = set()
    with source:
        assert source.wait_synced(10)
        wait_for(lambda: kube.open_watches >= len(PATHS), what="watches open")
        assert differences(store, kube, PATHS) == []
        seen: list[ChangeSet] = []
        store.subscribe(seen.append)
        kube.expire_mode = expire_mode
        lists_before = Counter(r.path for r in kube.requests if not r.watch)

        back = outage(kube, mode, lambda: touched.update(changes_while_away(kube)))
        wait_for(
            lambda: differences(store, kube, PATHS) == [],
            timeout=120,
            what=f"the store equal to the API (left: {differences(store, kube, PATHS)})",
        )
        converged = time.monotonic() - back
        print(
            f"\nFIGURE outage={OUTAGE_SECONDS:.0f}s mode={mode} 410-as={expire_mode}: "
            f"store converged {converged:.2f} s after the API came back"
        )
        lists_after = Counter(r.path for r in kube.requests if not r.watch)

    # Each touched key changed exactly once (the relist gives its end state), nothing else
    # was announced, and what was added and deleted while away was never seen.
    announced = Counter(k for change in seen for k in change.changes)
    assert announced == Counter(touched), announced
    assert key("Service", "ephemeral") not in store.snapshot
    removed = {k for change in seen for k in change.removed}
    assert removed == {key("Service", "beta"), key("EndpointSlice", "beta-1"),
                       key("VirtualService", "beta")}  # fmt: skip
    # The old resourceVersion expired: every collection relisted (once).
    assert {p: lists_after[p] - lists_before[p] for p in PATHS} == {p: 1 for p in PATHS}


def test_an_unreachable_api_is_retried_under_a_short_cap_and_the_backoff_restarts_once_it_answers(
    kube: KubeApiDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[tuple[int, float | None]] = []  # (attempt, cap) of each wait
    wait_backoff = Reflector._wait_backoff

    def recorded(self: Reflector, why: str, maximum: float | None = None) -> None:
        waits.append((self._backoff.attempt, maximum))
        wait_backoff(self, why, maximum)

    monkeypatch.setattr(Reflector, "_wait_backoff", recorded)
    options = ReflectorOptions(backoff_initial=0.01, unreachable_backoff_max=0.05)
    kinds = tuple(k for k in DEFAULT_KINDS if k.name == "Service")
    store = Store()
    with KubernetesSource(store, api_client_for(kube), kinds=kinds, options=options) as source:
        assert source.wait_synced(10)
        kube.go_away("refuse")
        wait_for(lambda: len(waits) >= 8, what="retries while the API is away")
        kube.come_back()
        kube.upsert(SERVICES, service("after"))
        wait_for(lambda: key("Service", "after") in store.snapshot, what="events again")
        answered = len(waits)
        kube.drop_watches()  # the next failure
        wait_for(lambda: len(waits) > answered, what="one more retry")
    unreachable = options.unreachable_backoff_max
    assert [cap for _, cap in waits] == [unreachable] * len(waits)
    assert [attempt for attempt, _ in waits[:8]] == list(range(8))
    assert waits[answered][0] == 0, "the backoff starts over once the API answered"
