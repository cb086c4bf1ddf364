"""Which Kubernetes objects feed which Service's endpoints: its EndpointSlices, and the Pods
its slices (or legacy Endpoints) refer to by targetRef or address. Kept with the services
part of the index so that an endpoint change finds the services it touches by lookup, at a
cost that does not grow with the mesh: the maps are persistent (``immutables.Map``), so an
update shares all but the entries it changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import immutables

from controlplane.model.kubernetes import Endpoints, EndpointSlice, Pod

ServiceName = tuple[str, str]  # (namespace, Service name)
# ("pod", namespace, name) for a targetRef, ("ip", address) for an address.
Reference = tuple[str, ...]


def _empty() -> immutables.Map:
    return immutables.Map()


@dataclass(frozen=True, slots=True)
class EndpointSources:
    # each Service's slices, sorted by name
    slices: immutables.Map[ServiceName, tuple[EndpointSlice, ...]] = field(default_factory=_empty)
    refs: immutables.Map[ServiceName, frozenset[Reference]] = field(default_factory=_empty)
    users: immutables.Map[Reference, frozenset[ServiceName]] = field(default_factory=_empty)

    def services_using(self, pods: Iterable[Pod]) -> set[ServiceName]:
        """Services whose slices or Endpoints refer to one of ``pods`` (PodIndex.find's way)."""
        found: set[ServiceName] = set()
        for pod in pods:
            found |= self.users.get(("pod", pod.meta.namespace, pod.meta.name), frozenset())
            for ip in pod.ips:
                found |= self.users.get(("ip", ip), frozenset())
        return found

    def updated(
        self,
        slices: Iterable[tuple[EndpointSlice | None, EndpointSlice | None]],
        legacy: Iterable[tuple[Endpoints | None, Endpoints | None]],
        current_legacy: Mapping[ServiceName, Endpoints | None],
    ) -> tuple[EndpointSources, set[ServiceName]]:
        """After slices and Endpoints changed, given as (old, new): the sources, and the
        services they belong to. ``current_legacy`` gives each such service's Endpoints now."""
        by_service = self.slices.mutate()
        touched: set[ServiceName] = set()
        for old, new in slices:
            for sl, keep in ((old, False), (new, True)):
                if sl is None:
                    continue
                service = (sl.meta.namespace, sl.service_name)
                touched.add(service)
                others = [s for s in by_service.get(service, ()) if s.meta.name != sl.meta.name]
                if keep:
                    others.append(sl)
                if others:
                    by_service[service] = tuple(sorted(others, key=lambda s: s.meta.name))
                else:
                    by_service.pop(service, None)
        for pair in legacy:
            touched.update((e.meta.namespace, e.meta.name) for e in pair if e is not None)
        refs, users = self.refs.mutate(), self.users.mutate()
        for service in touched:
            before = refs.get(service, frozenset())
            after = _references(by_service.get(service, ()), current_legacy.get(service))
            for ref in before - after:
                remaining = users.get(ref, frozenset()) - {service}
                if remaining:
                    users[ref] = remaining
                else:
                    users.pop(ref, None)
            for ref in after - before:
                users[ref] = users.get(ref, frozenset()) | {service}
            if after:
                refs[service] = after
            else:
                refs.pop(service, None)
        return EndpointSources(by_service.finish(), refs.finish(), users.finish()), touched


def build_endpoint_sources(
    slices: Mapping[ServiceName, list[EndpointSlice]], legacy: Mapping[ServiceName, Endpoints]
) -> EndpointSources:
    """From every slice (in snapshot order: by name within a service) and Endpoints."""
    refs: dict[ServiceName, frozenset[Reference]] = {}
    users: dict[Reference, set[ServiceName]] = {}
    for service in slices.keys() | legacy.keys():
        found = _references(slices.get(service, ()), legacy.get(service))
        if found:
            refs[service] = found
        for ref in found:
            users.setdefault(ref, set()).add(service)
    return EndpointSources(
        immutables.Map({service: tuple(items) for service, items in slices.items()}),
        immutables.Map(refs),
        immutables.Map({ref: frozenset(services) for ref, services in users.items()}),
    )


def _references(slices: Iterable[EndpointSlice], legacy: Endpoints | None) -> frozenset[Reference]:
    found: set[Reference] = set()
    for sl in slices:
        for endpoint in sl.endpoints:
            _add(found, sl.meta.namespace, endpoint.target_ref, endpoint.addresses)
    if legacy is not None:
        for subset in legacy.subsets:
            for address in (*subset.addresses, *subset.not_ready_addresses):
                _add(found, legacy.meta.namespace, address.target_ref, (address.ip,))
    return frozenset(found)


def _add(found: set[Reference], namespace: str, target_ref, addresses: Iterable[str]) -> None:
    if target_ref is not None and target_ref.kind == "Pod":
        found.add(("pod", target_ref.namespace or namespace, target_ref.name))
    found.update(("ip", ip) for ip in addresses)
