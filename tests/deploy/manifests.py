"""Read the deploy/ manifests and check them with the official client's models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.conftest import REPO
from tests.deploy.crd_schemas import without_nulls

DEPLOY = REPO / "deploy"
MANIFESTS = (
    DEPLOY / "kubernetes" / "controlplane.yaml",
    DEPLOY / "kubernetes" / "webhook.yaml",
    DEPLOY / "kubernetes" / "crds.yaml",
    DEPLOY / "kubernetes" / "sidecar-example.yaml",
    DEPLOY / "kind" / "ingress-gateway.yaml",
)
_API = client.ApiClient()


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def find(path: Path, kind: str, name: str) -> dict[str, Any]:
    return next(d for d in documents(path) if d["kind"] == kind and d["metadata"]["name"] == name)


def _differences(given: Any, kept: Any, path: str = "") -> list[str]:
    if isinstance(given, dict) and isinstance(kept, dict):
        found = []
        for key in given:
            if key not in kept:
                found.append(f"{path}.{key}: not a field of the API")
            else:
                found += _differences(given[key], kept[key], f"{path}.{key}")
        return found
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [d for i, (a, b) in enumerate(zip(given, kept, strict=True))
                for d in _differences(a, b, f"{path}[{i}]")]
    return [] if given == kept else [f"{path}: {given!r} read back as {kept!r}"]


def model_problems(document: dict[str, Any]) -> list[str]:
    """Load ``document`` into the client's model of its kind (V1Deployment, ...) and write it
    back: a field the model does not have is dropped, a value of the wrong type raises."""
    version = document["apiVersion"].rsplit("/", 1)[-1]
    model = getattr(client, version.capitalize() + document["kind"], None)
    if model is None:
        return [f"no model for {document['apiVersion']} {document['kind']}"]
    try:
        loaded = model.from_dict(document)
    except Exception as error:  # noqa: BLE001 (pydantic's ValidationError names the field)
        return [f"{type(error).__name__}: {error}"]
    kept = without_nulls(_API.sanitize_for_serialization(loaded))
    return _differences(without_nulls(document), kept)
