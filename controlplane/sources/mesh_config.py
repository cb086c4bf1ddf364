"""Read Istio's mesh config file (``--mesh-config FILE``): the mesh YAML or the ``istio`` ConfigMap."""

from __future__ import annotations

from pathlib import Path

import yaml

from controlplane.model.base import FieldError, Origin, ValidationError
from controlplane.model.mesh import parse_document
from controlplane.model.mesh_config import IstioMeshConfig


def load_mesh_config(path: Path) -> IstioMeshConfig:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValidationError(
            [FieldError("", f"not valid YAML: {exc}")], origin=Origin(str(path))
        ) from exc
    return parse_document(document, Origin(str(path)))
