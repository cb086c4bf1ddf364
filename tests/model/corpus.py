"""The Istio conformance corpus as (id, document, expected error path) cases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.sources.yaml_loader import load_file


def load_documents(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(1-based line, document) for every non-empty document, read as the folder source
    reads files (go-yaml compatible where PyYAML differs)."""
    result = load_file(path)
    assert not result.problems, result.problems
    return [(doc.origin.line, doc.body) for doc in result.documents if doc.body]

# Documents whose ``_err`` (Istio's own message) does not name the field: the path we report.
EXPECTED_PATHS: dict[tuple[str, str], str] = {
    ("authz-invalid.yaml", "service-account-and-namespace"): "spec.rules[0].from[0].source",
    (
        "authz-invalid.yaml",
        "service-account-and-namespace-principal",
    ): "spec.rules[0].from[0].source",
    ("peerauth-invalid.yaml", "bad-mode"): "spec.mtls.mode",
    ("peerauth-invalid.yaml", "bad-port"): "spec.portLevelMtls[acd]",
    ("peerauth-invalid.yaml", "port-level-global"): "spec.portLevelMtls",
    ("peerauth-invalid.yaml", "zero-port"): "spec.portLevelMtls[0]",
    ("peerauth-invalid.yaml", "high-port"): "spec.portLevelMtls[42949672]",
    ("reqauth-invalid.yaml", "multi-refs"): "spec",
    ("reqauth-invalid.yaml", "ref-and-selector"): "spec",
    ("reqauth-invalid.yaml", "bad-target-namespace"): "spec.targetRef.namespace",
    ("reqauth-invalid.yaml", "invalid-jwks"): "spec.jwtRules[0].jwksUri",
    ("reqauth-invalid.yaml", "bad-timeout"): "spec.jwtRules[0].timeout",
    ("reqauth-invalid.yaml", "invalid-presence-value"): "spec.jwtRules[0].presence",
    ("serviceentry-invalid.yaml", "bad-selector-value"): "spec.workloadSelector.labels[val]",
    ("serviceentry-invalid.yaml", "selector-and-endpoints"): "spec",
    ("serviceentry-invalid.yaml", "bad-host-wildcard"): "spec.hosts[0]",
    ("serviceentry-invalid.yaml", "bad-cidr-resolution"): "spec.addresses[0]",
    ("serviceentry-invalid.yaml", "duplicate-ports-name"): "spec.ports[1].name",
    ("serviceentry-invalid.yaml", "duplicate-ports-number"): "spec.ports[1].number",
    ("serviceentry-invalid.yaml", "bad-port"): "spec.ports[0].number",
    ("serviceentry-invalid.yaml", "bad-port-target"): "spec.ports[0].targetPort",
    ("serviceentry-invalid.yaml", "none-with-endpoints"): "spec.endpoints",
    ("serviceentry-invalid.yaml", "dns-rr-with-multiple-endpoints"): "spec.endpoints",
    ("telemetry-invalid.yaml", "bad-tag-upsert"): "spec.metrics[0].overrides[0].tagOverrides[foo]",
    ("telemetry-invalid.yaml", "bad-tag-remove"): "spec.metrics[0].overrides[0].tagOverrides[foo]",
    ("workloadentry-invalid.yaml", "missing-address"): "spec.address",
    ("workloadentry-invalid.yaml", "bad-uds-dir"): "spec.address",
    ("workloadentry-invalid.yaml", "bad-uds-relative"): "spec.address",
    ("workloadentry-invalid.yaml", "uds-with-ports"): "spec.ports",
    ("workloadentry-invalid.yaml", "high-port"): "spec.ports[http]",
}

# "spec.x.y: Required value", "spec.x in body should ...", "audiences[0] in body ..."
_PATH_IN_MESSAGE = re.compile(r"^([A-Za-z][\w]*(?:\[[^\]\s]*\]|\.[A-Za-z]\w*)*)(?::| in body)")


@dataclass(frozen=True)
class Case:
    id: str
    doc: dict[str, Any]
    expected_path: str | None  # for invalid documents
    line: int
    file: str


def expected_path(file: str, doc: dict[str, Any], message: str) -> str:
    name = (doc.get("metadata") or {}).get("name", "")
    if (file, name) in EXPECTED_PATHS:
        return EXPECTED_PATHS[(file, name)]
    match = _PATH_IN_MESSAGE.match(message)
    if match is None:
        raise AssertionError(f"{file} {name}: no path in {message!r} and none in EXPECTED_PATHS")
    return match.group(1)


def names_path(actual: str, expected: str) -> bool:
    """Does an error at ``actual`` name the field ``expected`` (a full path or a tail of one)?"""
    if actual == expected or actual.startswith((expected + ".", expected + "[")):
        return True
    return (
        actual.endswith("." + expected)
        or ("." + expected + ".") in actual
        or ("." + expected + "[") in actual
    )


def validation_cases(root: Path, suffix: str) -> list[Case]:
    cases = []
    for path in sorted((root / "validation").glob(f"*-{suffix}.yaml")):
        for index, (line, doc) in enumerate(load_documents(path)):
            message = doc.pop("_err", None)
            name = (doc.get("metadata") or {}).get("name", "")
            want = expected_path(path.name, doc, str(message)) if suffix == "invalid" else None
            cases.append(Case(f"{path.stem}:{index}:{name}", doc, want, line, path.name))
    return cases


def sample_cases(root: Path) -> list[Case]:
    cases = []
    for path in sorted((root / "samples").rglob("*.yaml")):
        rel = path.relative_to(root / "samples")
        for index, (line, doc) in enumerate(load_documents(path)):
            name = (doc.get("metadata") or {}).get("name", "")
            cases.append(Case(f"{rel}:{index}:{doc.get('kind')}:{name}", doc, None, line, str(rel)))
    return cases
