"""Shared by the demo tests: the demo's YAML through the project's loader and translator,
shaped like the entries of Envoy's /config_dump?resource=... (no Envoy, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from controlplane.demo.ingress import INGRESS_DIR, gateway_workload
from controlplane.demo.phases import PHASES, Phase
from controlplane.demo.propagation import ALL, LISTENERS, ROUTES
from controlplane.demo.topology import BASE_DIR, Workload, load_workloads
from controlplane.sources.parsing import parse_document
from controlplane.sources.yaml_loader import load_file
from controlplane.store import Snapshot
from controlplane.translate import translator
from controlplane.translate.proxy import Proxy

# The sidecars, and the ingress gateway (a router) of the Gateway API phase.
WORKLOADS = [*load_workloads(BASE_DIR), gateway_workload()]


def snapshot(folders: list[Path]) -> Snapshot:
    files: dict[str, Path] = {}
    for folder in folders:  # later phases replace files of the same name, as in the demo
        files.update({p.name: p for p in folder.glob("*.yaml")})
    by_kind: dict[str, dict[Any, Any]] = {}
    for path in files.values():
        for document in load_file(path).documents:
            resource = parse_document(document).resource
            assert resource is not None, path
            by_kind.setdefault(resource.KIND, {})[resource.key] = resource
    return Snapshot(by_kind, version=1)


def snapshot_up_to(index: int) -> Snapshot:
    """Base and ingress config plus the overlays of PHASES[0..index]."""
    overlays = [p.overlay for p in PHASES[: index + 1] if p.overlay is not None]
    return snapshot([BASE_DIR, INGRESS_DIR, *overlays])


def as_dump(workload: Workload, snap: Snapshot, resource: str) -> list[dict[str, Any]]:
    proxy = Proxy.make(
        workload.kind,
        workload.namespace,
        labels=dict(workload.labels),
        ips=[workload.address],
        service_account=workload.service_account,
        workload_name=workload.name,
        interception_mode="NONE",
    )
    out = translator.translate(snap, proxy)
    if resource == ROUTES:
        return [
            {"route_config": MessageToDict(m, preserving_proto_field_name=True)}
            for m in out[translator.ROUTE_TYPE]
        ]
    listeners = [
        {"active_state": {"listener": MessageToDict(m, preserving_proto_field_name=True)}}
        for m in out[translator.LISTENER_TYPE]
    ]
    if resource == LISTENERS:
        return listeners
    assert resource == ALL  # the sections of a whole dump: listeners and ECDS filter configs
    admin = "type.googleapis.com/envoy.admin.v3."
    ecds = [
        {"ecds_filter": {"@type": translator.EXTENSION_CONFIG_TYPE, **MessageToDict(m, preserving_proto_field_name=True)}}
        for m in out.get(translator.EXTENSION_CONFIG_TYPE, [])
    ]
    return [
        {"@type": admin + "ListenersConfigDump", "dynamic_listeners": listeners},
        {"@type": admin + "EcdsConfigDump", "ecds_filters": ecds},
    ]


def translated_check_holds(phase: Phase, snap: Snapshot) -> bool:
    assert phase.check is not None
    concerned = [w for w in WORKLOADS if phase.applies_to(w)]
    return all(phase.check(w, as_dump(w, snap, phase.resource)) for w in concerned)
