"""Has a change reached every sidecar? Read each Envoy's admin /config_dump and check.

Each phase names what its change must look like in a sidecar's config (a route
to subset v2 for ``end-user: jason``, a fault on ratings, an inbound listener
that requires a client certificate) as a predicate on the parsed dump. After
the demo writes the YAML it polls every sidecar's admin API concurrently; the
time from the write to the predicate holding is the propagation delay of that
sidecar (file watch + debounce + translation + push + Envoy applying it).

A listener change leaves the connections already open on the old filter chains for
Envoy's drain time; ``wait_until_drained`` waits until no sidecar concerned holds such
chains any more, so that what is counted next went through the new filters.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from controlplane.demo.topology import Workload
from controlplane.translate.names import parse_cluster_name

ROUTES = "dynamic_route_configs"
LISTENERS = "dynamic_listeners"
ALL = ""  # the whole dump: its ``configs`` sections (listeners, ECDS filter configs, ...)
POLL_INTERVAL_SECONDS = 0.02
DRAINING_STAT = "listener_manager.total_filter_chains_draining"
RBAC_TYPE_SUFFIX = ".rbac.v3.RBAC"

ConfigCheck = Callable[[Workload, list[dict[str, Any]]], bool]


def config_dump(admin_url: str, resource: str, timeout: float = 2.0) -> list[dict[str, Any]]:
    """The ``configs`` entries of ``/config_dump?resource=<resource>`` (the whole dump's
    sections for ``ALL``); [] if unreachable."""
    query = f"?resource={resource}" if resource else ""
    try:
        with urllib.request.urlopen(f"{admin_url}/config_dump{query}", timeout=timeout) as r:
            return list(json.loads(r.read()).get("configs", []))
    except (OSError, ValueError, urllib.error.URLError):
        return []


# -- reading routes --------------------------------------------------------------


def virtual_hosts(route_configs: list[dict[str, Any]], service: str) -> Iterator[dict[str, Any]]:
    """Virtual hosts answering for the short name of ``service`` (``reviews`` or ``reviews:9080``)."""
    for entry in route_configs:
        for vhost in (entry.get("route_config") or {}).get("virtual_hosts", []):
            domains = vhost.get("domains", [])
            if service in domains or any(d.startswith(f"{service}:") for d in domains):
                yield vhost


def route_targets(route: dict[str, Any]) -> dict[str, int]:
    """Subset -> weight of one route (``outbound|9080|v2|reviews...`` gives ``v2``)."""
    action = route.get("route") or {}
    if "cluster" in action:
        return {_subset(action["cluster"]): 100}
    weighted = (action.get("weighted_clusters") or {}).get("clusters", [])
    return {_subset(c["name"]): int(c.get("weight", 0)) for c in weighted}


def _subset(cluster: str) -> str:
    parts = cluster.split("|")
    return parts[2] if len(parts) == 4 else cluster


def header_exact(route: dict[str, Any], name: str) -> str | None:
    for matcher in (route.get("match") or {}).get("headers", []):
        if matcher.get("name") == name:
            return (matcher.get("string_match") or {}).get("exact") or matcher.get("exact_match")
    return None


def _routes(route_configs: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    found = [
        route
        for vhost in virtual_hosts(route_configs, service)
        for route in vhost.get("routes", [])
    ]
    return found


def all_to_subset(services: tuple[str, ...], subset: str) -> ConfigCheck:
    def check(_w: Workload, route_configs: list[dict[str, Any]]) -> bool:
        for service in services:
            routes = _routes(route_configs, service)
            if not routes or any(set(route_targets(r)) != {subset} for r in routes):
                return False
        return True

    return check


def header_routes_to(service: str, header: str, value: str, subset: str) -> ConfigCheck:
    def check(_w: Workload, route_configs: list[dict[str, Any]]) -> bool:
        return any(
            header_exact(r, header) == value and route_targets(r) == {subset: 100}
            for r in _routes(route_configs, service)
        )

    return check


def weighted_to(service: str, weights: dict[str, int]) -> ConfigCheck:
    def check(_w: Workload, route_configs: list[dict[str, Any]]) -> bool:
        return any(
            header_exact(r, "end-user") is None and route_targets(r) == weights
            for r in _routes(route_configs, service)
        )

    return check


def path_routes_to(route_config: str, host: str, path: str, service: str) -> ConfigCheck:
    """In the route configuration ``route_config`` (a gateway's ``http.8081``), a route of
    ``host`` for exactly ``path`` goes to ``service`` (``outbound|9080||productpage...``)."""

    def check(_w: Workload, route_configs: list[dict[str, Any]]) -> bool:
        named = [c for c in route_configs if (c.get("route_config") or {}).get("name") == route_config]
        return any(
            (r.get("match") or {}).get("path") == path
            and _cluster_service((r.get("route") or {}).get("cluster", "")) == service
            for r in _routes(named, host)
        )

    return check


def _cluster_service(cluster: str) -> str:
    """``productpage`` of ``outbound|9080||productpage.default.svc.cluster.local``."""
    parsed = parse_cluster_name(cluster)
    return parsed[3].split(".")[0] if parsed else ""


def both(first: ConfigCheck, second: ConfigCheck) -> ConfigCheck:
    return lambda w, configs: first(w, configs) and second(w, configs)


def has_abort_fault(service: str) -> ConfigCheck:
    def check(_w: Workload, route_configs: list[dict[str, Any]]) -> bool:
        for vhost in virtual_hosts(route_configs, service):
            for scope in (vhost, *vhost.get("routes", [])):
                for key, value in (scope.get("typed_per_filter_config") or {}).items():
                    if "fault" in key and "abort" in json.dumps(value):
                        return True
        return False

    return check


# -- reading listeners -----------------------------------------------------------


def inbound_requires_client_cert(workload: Workload, listeners: list[dict[str, Any]]) -> bool:
    """The listener on the workload's inbound address: every filter chain demands mTLS."""
    for entry in listeners:
        listener = (entry.get("active_state") or {}).get("listener") or {}
        socket = (listener.get("address") or {}).get("socket_address") or {}
        if (
            socket.get("address") != workload.address
            or socket.get("port_value") != workload.inbound_port
        ):
            continue
        chains = listener.get("filter_chains", [])
        return bool(chains) and all(_requires_client_cert(c) for c in chains)
    return False


def _requires_client_cert(chain: dict[str, Any]) -> bool:
    typed = ((chain.get("transport_socket") or {}).get("typed_config")) or {}
    value = typed.get("require_client_certificate")
    return value is True or (isinstance(value, dict) and value.get("value") is True)


# -- reading authorization policies ----------------------------------------------


def enforced_rbac_policies(node: Any) -> set[str]:
    """Names of the enforced (not dry-run) policies of every RBAC filter config anywhere in
    ``node``: inline in a listener or served over ECDS."""
    found: set[str] = set()
    if isinstance(node, dict):
        if str(node.get("@type", "")).endswith(RBAC_TYPE_SUFFIX):
            found |= set(((node.get("rules") or {}).get("policies") or {}).keys())
        for value in node.values():
            found |= enforced_rbac_policies(value)
    elif isinstance(node, list):
        for item in node:
            found |= enforced_rbac_policies(item)
    return found


def enforces_policies(by_service: dict[str, tuple[str, ...]]) -> ConfigCheck:
    """Each workload of a service in ``by_service`` enforces those RBAC policies (names as
    Istio's ``ns[NS]-policy[NAME]-rule[N]``); check it on the whole dump (``ALL``)."""

    def check(workload: Workload, configs: list[dict[str, Any]]) -> bool:
        wanted = set(by_service.get(workload.service, ()))
        return bool(wanted) and wanted <= enforced_rbac_policies(configs)

    return check


# -- measuring -------------------------------------------------------------------


@dataclass(frozen=True)
class Propagation:
    """Seconds from the write to the change being in place, per sidecar (None: timed out)."""

    per_sidecar: dict[str, float | None]

    @property
    def complete(self) -> bool:
        return all(v is not None for v in self.per_sidecar.values())

    @property
    def slowest(self) -> float | None:
        values = [v for v in self.per_sidecar.values() if v is not None]
        return max(values) if values and self.complete else None

    def to_json(self) -> dict[str, object]:
        return {
            "complete": self.complete,
            "slowest_seconds": self.slowest,
            "per_sidecar": {
                k: (round(v, 4) if v is not None else None) for k, v in self.per_sidecar.items()
            },
        }


def wait_until_applied(
    workloads: list[Workload],
    resource: str,
    check: ConfigCheck,
    *,
    since: float,
    timeout: float,
    stop: threading.Event | None = None,
) -> Propagation:
    """Poll every sidecar's admin API concurrently until ``check`` holds on each."""
    results: dict[str, float | None] = {w.name: None for w in workloads}
    deadline = since + timeout

    def poll(workload: Workload) -> None:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            if check(workload, config_dump(workload.admin_url, resource)):
                results[workload.name] = time.monotonic() - since
                return
            time.sleep(POLL_INTERVAL_SECONDS)

    threads = [threading.Thread(target=poll, args=(w,), daemon=True) for w in workloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 1)
    return Propagation(dict(results))


def filter_chains_draining(admin_url: str, timeout: float = 2.0) -> int | None:
    """How many old filter chains the Envoy still drains; None if it cannot be read."""
    try:
        query = urllib.parse.urlencode({"format": "json", "filter": f"^{DRAINING_STAT}$"})
        with urllib.request.urlopen(f"{admin_url}/stats?{query}", timeout=timeout) as r:
            stats = json.loads(r.read()).get("stats", [])
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return sum(int(s.get("value", 0)) for s in stats if s.get("name") == DRAINING_STAT)


def wait_until_drained(
    workloads: list[Workload], *, timeout: float, stop: threading.Event | None = None
) -> bool:
    """Poll until no sidecar of ``workloads`` drains old filter chains; False on timeout."""
    deadline = time.monotonic() + timeout
    pending = list(workloads)
    while pending and time.monotonic() < deadline and not (stop and stop.is_set()):
        pending = [w for w in pending if filter_chains_draining(w.admin_url) != 0]
        if pending:
            time.sleep(POLL_INTERVAL_SECONDS * 5)
    return not pending
