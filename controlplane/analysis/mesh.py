"""The mesh config an analysis reads: ``--mesh-config FILE``, else the ``istio`` ConfigMap
of the input (as ``istioctl analyze`` reads it from the cluster), else Istio's defaults."""

from __future__ import annotations

from controlplane.analysis.inputs import Inputs
from controlplane.model.base import ValidationError
from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX
from controlplane.model.mesh import MeshConfig, apply_mesh_config, parse_document
from controlplane.model.mesh_config import IstioMeshConfig
from controlplane.sources.diagnostics import WARNING, Diagnostic

MESH_CONFIGMAP = "istio"


def mesh_config_in(inputs: Inputs) -> tuple[IstioMeshConfig | None, list[Diagnostic]]:
    """The first ``istio`` ConfigMap holding ``data.mesh`` among the inputs, if any."""
    problems: list[Diagnostic] = []
    for parsed in inputs.raw(["ConfigMap"]):
        body = parsed.document.body
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        if meta.get("name") != MESH_CONFIGMAP or "mesh" not in data:
            continue
        try:
            return parse_document(body, parsed.document.origin), problems
        except ValidationError as exc:
            problems.append(
                Diagnostic(
                    parsed.document.origin,
                    parsed.key,
                    "data.mesh",
                    f"not used as the mesh config: {exc}",
                    WARNING,
                )
            )
    return None, problems


def mesh_of(
    document: IstioMeshConfig | None, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
) -> MeshConfig:
    base = MeshConfig(domain_suffix=domain_suffix)
    return base if document is None else apply_mesh_config(base, document)
