"""An in-memory source for tests: apply and delete dicts or model objects directly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controlplane.model.base import FieldError, Origin, Resource, ResourceKey, ValidationError
from controlplane.sources.parsing import parse_document
from controlplane.sources.yaml_loader import Document, load_yaml
from controlplane.store import ChangeSet, Store


class MemorySource:
    """Feeds ``store`` as ``source_id``. Dicts are parsed and validated like any input;
    an invalid one raises ``ValidationError`` and changes nothing."""

    def __init__(
        self, store: Store, source_id: str = "memory", default_namespace: str = "default"
    ) -> None:
        self.store = store
        self.source_id = source_id
        self.default_namespace = default_namespace

    def to_resource(self, item: Resource | Mapping[str, Any]) -> Resource | None:
        """A model object for ``item``; None for a kind the model does not support."""
        if isinstance(item, Resource):
            return item
        parsed = parse_document(
            Document(dict(item), Origin(self.source_id)), self.default_namespace
        )
        if parsed.unsupported:
            return None
        if parsed.resource is None:
            errors = [d for d in parsed.diagnostics if d.is_error]
            raise ValidationError(
                [FieldError(d.path, d.message) for d in errors],
                key=parsed.key,
                origin=Origin(self.source_id),
            )
        return parsed.resource

    def apply(self, *items: Resource | Mapping[str, Any]) -> ChangeSet:
        resources = [r for r in (self.to_resource(i) for i in items) if r is not None]
        return self.store.apply(self.source_id, resources)

    def apply_yaml(self, text: str) -> ChangeSet:
        result = load_yaml(text, self.source_id)
        if result.problems:
            raise ValueError("; ".join(f"{p.origin}: {p.message}" for p in result.problems))
        return self.apply(*(d.body for d in result.documents))

    def delete(self, *items: ResourceKey | Resource | Mapping[str, Any]) -> ChangeSet:
        keys: list[ResourceKey] = []
        for item in items:
            if isinstance(item, ResourceKey):
                keys.append(item)
            else:
                resource = self.to_resource(item)
                if resource is not None:
                    keys.append(resource.key)
        return self.store.apply(self.source_id, deletes=keys)

    def replace(self, items: Iterable[Resource | Mapping[str, Any]]) -> ChangeSet:
        resources = [r for r in (self.to_resource(i) for i in items) if r is not None]
        return self.store.replace(self.source_id, resources)

    def clear(self) -> ChangeSet:
        return self.store.remove_source(self.source_id)
