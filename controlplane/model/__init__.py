"""Typed, frozen models of every input kind, parsed and validated from plain dicts."""

from __future__ import annotations

from controlplane.model.base import (
    FieldError,
    ObjectMeta,
    Origin,
    Resource,
    ResourceKey,
    ValidationError,
)

__all__ = [
    "FieldError",
    "ObjectMeta",
    "Origin",
    "Resource",
    "ResourceKey",
    "ValidationError",
]
