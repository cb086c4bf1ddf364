"""The CRDs are generated from the model, committed up to date, structural, and their
schemas accept Istio's valid corpus and reject what a structural schema can of the invalid
one (the model's validation rejects the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controlplane.cluster.crds import crd, render, served_kinds
from controlplane.model import ValidationError, parse
from tests.conftest import CONFORMANCE
from tests.deploy.crd_schemas import schema_errors, validators
from tests.deploy.manifests import DEPLOY
from tests.model.corpus import sample_cases, validation_cases

_ROOT = CONFORMANCE if CONFORMANCE.is_dir() else Path("/nonexistent")
VALID = validation_cases(_ROOT, "valid") if _ROOT.is_dir() else []
INVALID = validation_cases(_ROOT, "invalid") if _ROOT.is_dir() else []
SERVED = {(f"{k.group}/{v}", k.doc_kind) for k in served_kinds() for v in k.versions}
SAMPLES = [c for c in (sample_cases(_ROOT) if _ROOT.is_dir() else [])
           if (c.doc.get("apiVersion"), c.doc.get("kind")) in SERVED]
CHECKERS = validators()


def test_committed_crds_are_up_to_date():
    committed = (DEPLOY / "kubernetes" / "crds.yaml").read_text(encoding="utf-8")
    assert committed == render(), "regenerate: controlplane crds -o deploy/kubernetes/crds.yaml"


def test_every_istio_kind_of_the_model_has_a_crd():
    names = {crd(k)["metadata"]["name"] for k in served_kinds()}
    assert {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
            "authorizationpolicies.security.istio.io", "telemetries.telemetry.istio.io",
            "serviceentries.networking.istio.io", "sidecars.networking.istio.io"} <= names


def _structural_problems(schema: dict[str, Any], path: str) -> list[str]:
    """Kubernetes' structural schema rules that matter here: every node has a type unless it
    preserves unknown fields or is int-or-string; properties and additionalProperties are
    never both set; no references."""
    problems = []
    if "$ref" in schema:
        problems.append(f"{path}: $ref")
    if "type" not in schema and not (schema.get("x-kubernetes-preserve-unknown-fields")
                                     or schema.get("x-kubernetes-int-or-string")):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties")
    for name, child in schema.get("properties", {}).items():
        problems += _structural_problems(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            problems += _structural_problems(schema[key], f"{path}[{key}]")
    return problems


@pytest.mark.parametrize("kind", served_kinds(), ids=lambda k: k.kind)
def test_schemas_are_structural(kind):
    definition = crd(kind)
    versions = definition["spec"]["versions"]
    assert [v["storage"] for v in versions].count(True) == 1
    for version in versions:
        assert _structural_problems(version["schema"]["openAPIV3Schema"], version["name"]) == []


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_corpus_is_accepted(case, conformance_dir):
    assert schema_errors(case.doc, CHECKERS) == []


@pytest.mark.parametrize("case", SAMPLES, ids=[c.id for c in SAMPLES])
def test_istio_samples_are_accepted(case, conformance_dir):
    assert schema_errors(case.doc, CHECKERS) == []


def test_invalid_corpus_is_rejected_by_the_schema_or_the_model(conformance_dir):
    by_schema, by_model_only = [], []
    for case in INVALID:
        if schema_errors(case.doc, CHECKERS):
            by_schema.append(case.id)
            continue
        with pytest.raises(ValidationError):
            parse(case.doc)
        by_model_only.append(case.id)
    print(f"\ninvalid corpus: {len(INVALID)} documents; the CRD schemas reject "
          f"{len(by_schema)}, the model's validation the other {len(by_model_only)}")
    # Structural schemas catch wrong types, unknown fields and enums, not Istio's semantic
    # rules (exclusive fields, host syntax, ...); at least those must be caught.
    assert by_schema, "the schemas reject nothing: strictness is lost"
    assert len(by_schema) + len(by_model_only) == len(INVALID)


def test_a_wrong_type_or_unknown_field_is_rejected():
    document = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "r"},
                                                            "weight": "ten"}]}]},
    }  # fmt: skip
    assert schema_errors(document, CHECKERS) == [
        "spec.http.0.route.0.weight: 'ten' is not of type 'integer'"
    ]
    document["spec"]["http"][0]["route"][0]["weight"] = 10
    assert schema_errors(document, CHECKERS) == []
    document["spec"]["gateway"] = ["typo"]
    assert schema_errors(document, CHECKERS) == [
        "spec: Additional properties are not allowed ('gateway' was unexpected)"
    ]
    document["spec"].pop("gateway")
    document["spec"]["http"][0]["timeout"] = "ten seconds"
    assert len(schema_errors(document, CHECKERS)) == 1


def test_the_command_writes_what_is_committed(tmp_path):
    from controlplane.cli import main

    assert main(["crds", "--output", str(tmp_path / "crds.yaml")]) == 0
    assert (tmp_path / "crds.yaml").read_text(encoding="utf-8") == \
        (DEPLOY / "kubernetes" / "crds.yaml").read_text(encoding="utf-8")
