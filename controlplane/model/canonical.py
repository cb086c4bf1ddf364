"""Istio's canonical service and revision of a workload, from its labels (as the injector
writes ``service.istio.io/canonical-name`` / ``canonical-revision``)."""

from __future__ import annotations

from collections.abc import Mapping

MAX_LABEL_VALUE = 63


def canonical_name(labels: Mapping[str, str], workload_name: str) -> str:
    name = (
        labels.get("service.istio.io/canonical-name")
        or labels.get("app.kubernetes.io/name")
        or labels.get("app")
        or workload_name
    )
    return _label_value(name)


def _label_value(value: str) -> str:
    """At most 63 characters, ending alphanumeric (a label value's rule)."""
    return value[:MAX_LABEL_VALUE].rstrip("-_.")


def canonical_revision(labels: Mapping[str, str]) -> str:
    revision = (
        labels.get("service.istio.io/canonical-revision")
        or labels.get("app.kubernetes.io/version")
        or labels.get("version")
        or "latest"
    )
    return _label_value(revision)
