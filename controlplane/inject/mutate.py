"""Inject a pod template: the new metadata and spec, and the same change as an RFC 6902 JSON
patch (what an admission webhook answers). Pure: dicts in, dicts out, inputs never modified."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.inject import keys as a
from controlplane.inject.params import InjectorSettings, PodDecisions, decide, status_annotation
from controlplane.inject.template import (
    INIT_NAME,
    PROXY_NAME,
    gateway_pod_security,
    init_container,
    proxy_container,
    volumes,
)
from controlplane.inject.workload import WorkloadMeta


@dataclass(frozen=True)
class Injected:
    metadata: dict[str, Any]
    spec: dict[str, Any]
    decisions: PodDecisions


def _names(items: list[dict[str, Any]]) -> set[str]:
    return {str(i.get("name")) for i in items}


def inject_template(
    metadata: Mapping[str, Any],
    spec: Mapping[str, Any],
    workload: WorkloadMeta,
    settings: InjectorSettings,
    where: str = "metadata",
) -> Injected:
    """Add the capture init step, the proxy and its volumes; set Istio's labels and annotations.
    A gateway (``inject.istio.io/templates: gateway``) gets the proxy as a router and no capture.
    Raises InjectionError (nothing injected) for bad annotations."""
    meta = copy.deepcopy(dict(metadata))
    new_spec = _without_previous_injection(copy.deepcopy(dict(spec)), meta)
    d = decide(meta, new_spec, workload, settings, where)
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    init = list(new_spec.get("initContainers") or ())
    containers = list(new_spec.get("containers") or ())
    # A pod may declare its own istio-init / istio-proxy to override fields (Istio merges them).
    overrides = {c.get("name"): c for c in init + containers if c.get("name") in (INIT_NAME, PROXY_NAME)}
    containers = [c for c in containers if c.get("name") != PROXY_NAME]
    proxy = proxy_container(d, settings, {**new_spec, "containers": containers}, annotations)
    if PROXY_NAME in overrides:
        proxy = _merge(proxy, overrides[PROXY_NAME])
        if d.interception_mode == "TPROXY":  # TPROXY needs root, whatever the override says
            proxy["securityContext"]["runAsUser"] = 0
    added_init: list[str] = []
    added_containers: list[str] = []
    init = [c for c in init if c.get("name") not in (INIT_NAME, PROXY_NAME)]
    front: list[dict[str, Any]] = []
    if d.interception_mode != "NONE" and not d.gateway:
        front.append(_merge(init_container(d, settings), overrides.get(INIT_NAME) or {}))
        added_init.append(INIT_NAME)
    if d.native_sidecar:
        front.append(proxy)
        added_init.append(PROXY_NAME)
    else:
        containers.append(proxy)
        added_containers.append(PROXY_NAME)
    if front or init:
        new_spec["initContainers"] = front + init
    new_spec["containers"] = containers
    if d.gateway:
        new_spec["securityContext"] = gateway_pod_security(new_spec.get("securityContext") or {})
    own_volumes = list(new_spec.get("volumes") or ())
    ours = [v for v in volumes(settings) if v["name"] not in _names(own_volumes)]
    new_spec["volumes"] = own_volumes + ours
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    labels.update({k: v for k, v in d.labels.items() if k not in labels})  # the pod's own win
    annotations.update(d.annotations)
    annotations[a.STATUS] = status_annotation(added_init, added_containers, [v["name"] for v in ours], settings.revision)
    meta["labels"] = labels
    meta["annotations"] = annotations
    return Injected(meta, new_spec, d)


def _without_previous_injection(spec: dict[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """An already injected pod (``sidecar.istio.io/status``) is injected afresh, as Istio does:
    what the earlier injection added is taken out first."""
    text = (metadata.get("annotations") or {}).get(a.STATUS)
    if not text:
        return spec
    try:
        status = json.loads(text)
    except ValueError:
        return spec
    if not isinstance(status, dict):
        return spec
    for key in ("initContainers", "containers", "volumes"):
        names = set(status.get(key) or ())
        if names and key in spec:
            spec[key] = [item for item in spec[key] or () if item.get("name") not in names]
    return spec


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The pod's own fields over the template's: maps merged, anything else replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        elif value is not None and (key, value) != ("image", "auto"):  # "auto": the injector's
            out[key] = copy.deepcopy(value)
    return out


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def json_patch(
    before_meta: Mapping[str, Any], before_spec: Mapping[str, Any], after: Injected, prefix: str = ""
) -> list[dict[str, Any]]:
    """The change as JSON patch operations on the pod (``prefix`` for a template path). Whole
    lists are replaced: the API server applies the patch all at once or not at all, so a pod
    is never half injected."""
    ops: list[dict[str, Any]] = []
    for field_name in ("labels", "annotations"):
        new = after.metadata.get(field_name) or {}
        old = before_meta.get(field_name)
        if old is None:
            ops.append({"op": "add", "path": f"{prefix}/metadata/{field_name}", "value": new})
            continue
        for key, value in new.items():
            if old.get(key) != value:
                op = "replace" if key in old else "add"
                ops.append({"op": op, "path": f"{prefix}/metadata/{field_name}/{_escape(key)}", "value": value})
    for field_name in ("initContainers", "containers", "volumes", "securityContext"):
        if field_name not in after.spec:
            continue
        new = after.spec[field_name]
        if before_spec.get(field_name) == new:
            continue
        op = "replace" if field_name in before_spec else "add"
        ops.append({"op": op, "path": f"{prefix}/spec/{field_name}", "value": new})
    return ops
