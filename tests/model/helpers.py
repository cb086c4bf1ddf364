"""Small builders and assertions for model tests."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.model import FieldError, ValidationError, parse, parse_with_warnings


def istio(
    kind: str,
    spec: Any,
    *,
    name: str = "r",
    group: str = "networking.istio.io",
    version: str = "v1",
    namespace: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": f"{group}/{version}", "kind": kind, "metadata": meta, "spec": spec}


def errors_of(doc: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(ValidationError) as caught:
        parse(doc)
    return caught.value.errors


def assert_error(doc: dict[str, Any], path: str, fragment: str = "") -> None:
    errors = errors_of(doc)
    matching = [e for e in errors if e.path == path and fragment.lower() in e.message.lower()]
    assert matching, f"no error at {path!r} containing {fragment!r}; got {[str(e) for e in errors]}"


def assert_valid(doc: dict[str, Any]) -> list[FieldError]:
    """Parse must succeed; returns the warnings."""
    return parse_with_warnings(doc)[1]
