"""Istio's own validation cases and samples, parsed by our model (one test per document)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.model import (
    Origin,
    Resource,
    UnsupportedKind,
    ValidationError,
    parse,
    parse_with_warnings,
)
from tests.conftest import CONFORMANCE
from tests.model.corpus import Case, names_path, sample_cases, validation_cases

# Collected at import so that every document gets its own test id; empty if the corpus is absent
# (the conformance_dir fixture then skips).
_ROOT = CONFORMANCE if CONFORMANCE.is_dir() else Path("/nonexistent")
VALID = validation_cases(_ROOT, "valid") if _ROOT.is_dir() else []
INVALID = validation_cases(_ROOT, "invalid") if _ROOT.is_dir() else []
SAMPLES = sample_cases(_ROOT) if _ROOT.is_dir() else []
SKIPPED_KINDS = {"Deployment"}


def test_corpus_is_present(conformance_dir: Path) -> None:
    assert len(VALID) >= 20 and len(INVALID) >= 50 and len(SAMPLES) >= 40


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_document_is_accepted(case: Case, conformance_dir: Path) -> None:
    resource, _warnings = parse_with_warnings(case.doc, Origin(case.file, case.line))
    assert isinstance(resource, Resource)
    assert resource.KIND == case.doc["kind"]
    assert resource.meta.name == case.doc["metadata"]["name"]


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_document_is_rejected_naming_the_field(case: Case, conformance_dir: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(case.doc, Origin(case.file, case.line))
    error = caught.value
    assert error.origin == Origin(case.file, case.line)
    assert error.key is not None and error.key.kind == case.doc["kind"]
    paths = [e.path for e in error.errors]
    assert case.expected_path is not None
    assert any(names_path(p, case.expected_path) for p in paths), (
        f"expected an error at {case.expected_path}, got:\n{error.describe()}"
    )
    assert f"{case.file}:{case.line}" in str(error)


@pytest.mark.parametrize("case", SAMPLES, ids=[c.id for c in SAMPLES])
def test_sample_parses_or_is_an_unsupported_kind(case: Case, conformance_dir: Path) -> None:
    if case.doc["kind"] in SKIPPED_KINDS:
        with pytest.raises(UnsupportedKind) as caught:
            parse(case.doc, Origin(case.file, case.line))
        assert caught.value.kind == case.doc["kind"]
        assert not isinstance(caught.value, ValidationError)
        return
    resource = parse(case.doc, Origin(case.file, case.line))
    assert resource.KIND == case.doc["kind"]
    assert resource.meta.origin == Origin(case.file, case.line)
    hash(resource)  # frozen all the way down
