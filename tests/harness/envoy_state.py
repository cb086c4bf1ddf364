"""What a test reads of a running Envoy to tell whether it reloaded anything: the version of
each dynamic resource it holds (admin ``/config_dump``) and its xDS update counters
(``/stats``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tests.harness.envoy import EnvoyProcess

_DUMP_LISTS: Mapping[str, tuple[str, ...]] = {
    # config_dump section -> path to (name, version) in each entry
    "dynamic_active_clusters": ("cluster", "name"),
    "dynamic_listeners": ("active_state", "listener", "name"),
    "dynamic_route_configs": ("route_config", "name"),
    "dynamic_endpoint_configs": ("endpoint_config", "cluster_name"),
    "ecds_filters": ("ecds_filter", "name"),
    "dynamic_active_secrets": ("name",),
}
_TYPES = {
    "dynamic_active_clusters": "CDS",
    "dynamic_listeners": "LDS",
    "dynamic_route_configs": "RDS",
    "dynamic_endpoint_configs": "EDS",
    "ecds_filters": "ECDS",
    "dynamic_active_secrets": "SDS",
}


def _dig(entry: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = entry
    for key in path:
        value = (value or {}).get(key)
    return value


def held_versions(envoy: EnvoyProcess) -> dict[tuple[str, str], tuple[str, str]]:
    """(type, resource name) -> (version_info, last_updated) of every dynamic resource the
    Envoy holds, from its admin ``/config_dump?include_eds``."""
    dump = json.loads(envoy.admin("/config_dump?include_eds"))
    held: dict[tuple[str, str], tuple[str, str]] = {}
    for config in dump.get("configs", []):
        for section, path in _DUMP_LISTS.items():
            for entry in config.get(section, []):
                versioned = entry.get("active_state", entry)
                name = _dig(entry, path)
                if name:
                    held[(_TYPES[section], str(name))] = (
                        str(versioned.get("version_info", "")),
                        str(versioned.get("last_updated", "")),
                    )
    return held


COUNTER_SUFFIXES = (
    ".update_success",
    ".update_attempt",
    ".update_rejected",
    ".update_failure",
    ".config_reload",
    ".config_fail",
)
LISTENER_MANAGER = (
    "listener_manager.total_listeners_draining",
    "listener_manager.total_listeners_warming",
    "listener_manager.listener_added",
    "listener_manager.listener_modified",
    "listener_manager.listener_removed",
    "listener_manager.listener_create_success",
    "listener_manager.total_filter_chains_draining",
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
    "cluster_manager.warming_clusters",
)


def xds_counters(envoy: EnvoyProcess) -> dict[str, int]:
    """Every xDS update counter the Envoy has (LDS, CDS, RDS, EDS, ECDS, SDS), and the
    listener and cluster manager's adds, changes, removals and drains."""
    stats = envoy.stats()
    return {
        name: value
        for name, value in sorted(stats.items())
        if name in LISTENER_MANAGER or (name.endswith(COUNTER_SUFFIXES) and "grpc." not in name)
    }
