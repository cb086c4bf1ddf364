"""EnvoyFilter validation (after Istio's ValidateEnvoyFilter).

The patch values themselves are Envoy protobuf: the translator parses them and reports the
ones it cannot use (``translate/envoy_filter/values.py``); here only their shape is checked.
"""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import check_regex
from controlplane.model.envoy_filter import EnvoyConfigObjectPatch, EnvoyFilter
from controlplane.model.validate_common import (
    error,
    validate_target_ref,
    validate_workload_selector,
    warning,
)

LISTENER_KINDS = frozenset({"LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER", "LISTENER_FILTER"})
ROUTE_KINDS = frozenset({"ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE"})
HCM_NAMES = frozenset({"envoy.filters.network.http_connection_manager", "envoy.http_connection_manager"})
# Filters added to a chain need their config (Istio's validateMissingTypedConfigFilterTypes).
_FILTER_KINDS = frozenset({"NETWORK_FILTER", "HTTP_FILTER", "LISTENER_FILTER"})
_ADDING = frozenset({"ADD", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE"})
_CONFIG_KEYS = ("typed_config", "typedConfig", "config_discovery", "configDiscovery")


def validate_envoy_filter(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, EnvoyFilter)
    spec = resource.spec
    if spec.workload_selector is not None:
        if not spec.workload_selector.labels:
            error(errors, "spec.workloadSelector.labels", "Envoy filter: workloadSelector cannot have empty labels")
        else:
            validate_workload_selector(spec.workload_selector.labels, "spec.workloadSelector.labels", errors)
        if spec.target_refs:
            error(errors, "spec", "only one of targetRefs or workloadSelector can be set")
    for index, ref in enumerate(spec.target_refs):
        validate_target_ref(ref, f"spec.targetRefs[{index}]", resource.meta.namespace, errors)
    if spec.target_refs:
        warning(errors, "spec.targetRefs", "EnvoyFilter targetRefs are not applied (as in Istio): it patches no proxy")
    for index, patch in enumerate(spec.config_patches):
        _validate_patch(patch, f"spec.configPatches[{index}]", errors)


def _validate_patch(cp: EnvoyConfigObjectPatch, path: str, errors: list[FieldError]) -> None:
    if cp.apply_to == "INVALID":
        error(errors, f"{path}.applyTo", "Envoy filter: missing applyTo")
        return
    if cp.apply_to == "BOOTSTRAP":
        error(errors, f"{path}.applyTo", "BOOTSTRAP patches are not supported: the bootstrap is not served over xDS")
        return
    if cp.patch is None:
        error(errors, f"{path}.patch", "Envoy filter: missing patch")
        return
    operation = cp.patch.operation
    if operation == "INVALID":
        error(errors, f"{path}.patch.operation", "Envoy filter: missing patch operation")
        return
    if operation != "REMOVE" and cp.patch.value is None:
        error(errors, f"{path}.patch.value", "Envoy filter: missing patch value for non-remove operation")
        return
    if cp.patch.value is not None and not isinstance(cp.patch.value, Mapping):
        error(errors, f"{path}.patch.value", "must be an object (an Envoy message in JSON/YAML form)")
        return
    match = cp.match
    if match is not None:
        kinds = [k for k in (match.listener, match.route_configuration, match.cluster) if k is not None]
        if len(kinds) > 1:
            error(errors, f"{path}.match", "only one of listener, routeConfiguration or cluster can be set")
        if match.proxy is not None and match.proxy.proxy_version and (
            message := check_regex(match.proxy.proxy_version)
        ):
            error(errors, f"{path}.match.proxy.proxyVersion", f"Envoy filter: invalid regex for proxy version, [{message}]")
        if match.proxy is not None and match.proxy.metadata:
            warning(errors, f"{path}.match.proxy.metadata",
                    "matching on node metadata is not supported: this patch applies to no proxy")
        _validate_match_kind(cp, path, errors)
    adds_filter = cp.apply_to in _FILTER_KINDS and operation in _ADDING and isinstance(cp.patch.value, Mapping)
    if adds_filter and not any(key in cp.patch.value for key in _CONFIG_KEYS):  # type: ignore[operator]
        error(errors, f"{path}.patch.value", "Envoy filter: filter is missing typed_config (or config_discovery)")


def _validate_match_kind(cp: EnvoyConfigObjectPatch, path: str, errors: list[FieldError]) -> None:
    match = cp.match
    assert match is not None
    has_object = match.listener or match.route_configuration or match.cluster
    if cp.apply_to in LISTENER_KINDS and has_object:
        if match.listener is None:
            error(errors, f"{path}.match", "Envoy filter: applyTo for listener class objects cannot have non listener match")
            return
        chain = match.listener.filter_chain
        m_path = f"{path}.match.listener.filterChain.filter"
        if chain is not None and chain.filter is not None:
            if cp.apply_to in ("LISTENER", "FILTER_CHAIN"):
                warning(errors, m_path, f"Envoy filter: filter match has no effect when used with {cp.apply_to}")
            if not chain.filter.name:
                error(errors, f"{m_path}.name", "Envoy filter: filter match has no name to match on")
            elif chain.filter.sub_filter is not None:
                if cp.apply_to != "HTTP_FILTER":
                    error(errors, f"{m_path}.subFilter", "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only")
                if chain.filter.name not in HCM_NAMES:
                    error(errors, f"{m_path}.subFilter",
                          "Envoy filter: subfilter match requires filter match with envoy.filters.network.http_connection_manager")
                if not chain.filter.sub_filter.name:
                    error(errors, f"{m_path}.subFilter.name", "Envoy filter: subfilter match has no name to match on")
        if match.listener.port_number < 0 or match.listener.port_number > 65535:
            error(errors, f"{path}.match.listener.portNumber", "Envoy filter: listener.portNumber must be a port (0..65535)")
    elif cp.apply_to in ROUTE_KINDS and has_object and match.route_configuration is None:
        error(errors, f"{path}.match",
              "Envoy filter: applyTo for http route class objects cannot have non route configuration match")
    elif cp.apply_to == "CLUSTER" and has_object and match.cluster is None:
        error(errors, f"{path}.match", "Envoy filter: applyTo for cluster class objects cannot have non cluster match")
