"""What every input resource has in common, and the typed validation error.

Every model is a frozen dataclass with ``meta: ObjectMeta`` and a ``KIND``
class attribute; ``key`` identifies it in the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from controlplane.model.text import MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_PATH_CHARS, clip


@dataclass(frozen=True, slots=True, order=True)
class ResourceKey:
    """Identity of an input resource: kind, namespace ("" when cluster-scoped), name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        # Clipped for a key read from a document that failed validation (a 1 MB name).
        kind, name = clip(self.kind, MAX_NAME_CHARS), clip(self.name, MAX_NAME_CHARS)
        if self.namespace:
            return f"{kind} {clip(self.namespace, MAX_NAME_CHARS)}/{name}"
        return f"{kind} {name}"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a resource was read from, for error messages (file and 1-based line)."""

    file: str = ""
    line: int = 0

    def __str__(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field: ``path`` like ``spec.http[0].route[1].destination.host``."""

    path: str
    message: str
    severity: str = "error"  # "error" or "warning"

    def __post_init__(self) -> None:
        # Paths and messages repeat user text (keys, values): bound what logs and configz show.
        object.__setattr__(self, "path", clip(self.path, MAX_PATH_CHARS))
        object.__setattr__(self, "message", clip(self.message, MAX_MESSAGE_CHARS))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ValueError):
    """A resource (or document) that cannot be accepted; carries every field error found."""

    def __init__(
        self,
        errors: list[FieldError],
        *,
        key: ResourceKey | None = None,
        origin: Origin | None = None,
    ) -> None:
        self.errors = errors
        self.key = key
        self.origin = origin or Origin()
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line per error: ``file:line: Kind ns/name: field.path: message``."""
        prefix = ""
        if str(self.origin):
            prefix += f"{self.origin}: "
        if self.key is not None:
            prefix += f"{self.key}: "
        return "\n".join(f"{prefix}{e}" for e in self.errors)


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    name: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    # Not compared: a write that changes nothing the model reads (the status subresource, our
    # own status writes among them) still moves resourceVersion, and must not count as a change
    # and cost a push.
    resource_version: str = field(default="", compare=False)
    origin: Origin = field(default_factory=Origin, compare=False)
    # metadata.creationTimestamp (aware, UTC) when the input has one: Istio orders Gateways
    # (and routes) by it. None where absent, so objects read without one stay equal.
    creation_timestamp: datetime | None = None


# Go's zero time: where Istio orders by creation time, an object without one comes first.
_NEVER = datetime.min.replace(tzinfo=UTC)


def creation_order(meta: ObjectMeta) -> datetime:
    """The creation time to sort by; absent sorts first."""
    return meta.creation_timestamp or _NEVER


def config_order(meta: ObjectMeta) -> tuple[datetime, str, str]:
    """Istio's sortConfigByCreationTime (Gateways, VirtualServices, ...): creation time, then
    name, then namespace."""
    return (creation_order(meta), meta.name, meta.namespace)


class Resource:
    """Mixin for model dataclasses: ``KIND`` plus a ``meta`` field give ``key``."""

    KIND: ClassVar[str]
    meta: ObjectMeta

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.KIND, self.meta.namespace, self.meta.name)
