"""Validate documents with the generated CRDs' schemas, as the API server would."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

from controlplane.cluster.crds import crd, served_kinds


def strict(schema: Any) -> Any:
    """The schema as checked with Kubernetes' strict field validation (kubectl's default since
    1.27): a field the schema does not declare is an error, not silently dropped."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def without_nulls(value: Any) -> Any:
    """The API server drops null fields before validating (nullable is never set here)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def validators() -> dict[tuple[str, str], jsonschema.Draft4Validator]:
    """(apiVersion, kind) -> a validator of that version's schema."""
    found = {}
    for kind in served_kinds():
        definition = crd(kind)
        for version in definition["spec"]["versions"]:
            schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            key = (f"{kind.group}/{version['name']}", definition["spec"]["names"]["kind"])
            found[key] = jsonschema.Draft4Validator(schema)
    return found


def schema_errors(
    document: dict[str, Any], checkers: dict[tuple[str, str], jsonschema.Draft4Validator]
) -> list[str]:
    checker = checkers[(document["apiVersion"], document["kind"])]
    return [
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in checker.iter_errors(without_nulls(document))
    ]
