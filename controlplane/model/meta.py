"""Parse ``metadata`` into the shared ObjectMeta, checking names and labels as Kubernetes does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controlplane.model.base import FieldError, ObjectMeta, Origin
from controlplane.model.checks import (
    check_dns1123_label,
    check_dns1123_subdomain,
    check_label_key,
    check_label_value,
)
from controlplane.model.frozen import FrozenDict

# Every ObjectMeta field of the Kubernetes API; the mesh keeps only a few of them.
_KEPT = {"name", "namespace", "labels", "annotations", "resourceVersion", "creationTimestamp"}
_IGNORED = {
    "uid",
    "generation",
    "generateName",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
    "clusterName",
}
# Kubernetes' TotalAnnotationSizeLimitB: keys and values of all annotations together.
MAX_ANNOTATIONS_BYTES = 256 * 1024


def _string_map(value: Any, path: str, errors: list[FieldError]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(FieldError(path, "must be of type object"))
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            key = str(key)
        if not isinstance(item, str):
            errors.append(FieldError(f"{path}[{key}]", "must be of type string"))
            continue
        out[key] = item
    return out


def parse_creation_timestamp(value: Any, errors: list[FieldError]) -> datetime | None:
    """``metadata.creationTimestamp``: RFC 3339 text (the API's form) or the timestamp a YAML
    loader already made of it; a time without a zone is UTC, as Kubernetes writes it."""
    if value is None or value == "":
        return None
    parsed = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        errors.append(FieldError("metadata.creationTimestamp", "must be an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z"))
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def check_labels(labels: dict[str, str], path: str, errors: list[FieldError]) -> None:
    for key, value in labels.items():
        message = check_label_key(key) or check_label_value(value)
        if message:
            errors.append(FieldError(f"{path}[{key}]", message))


def parse_meta(
    value: Any,
    errors: list[FieldError],
    *,
    origin: Origin,
    default_namespace: str,
    namespaced: bool,
    name_check: Any = check_dns1123_subdomain,
) -> ObjectMeta | None:
    """``metadata`` of any kind; None (with errors recorded) when unusable."""
    if value is None:
        errors.append(FieldError("metadata", "Required value"))
        return None
    if not isinstance(value, dict):
        errors.append(FieldError("metadata", "must be of type object"))
        return None
    for key in value:
        if key not in _KEPT and key not in _IGNORED:
            errors.append(FieldError(f"metadata.{key}", "unknown field"))
    name = value.get("name")
    if name is None or name == "":
        errors.append(FieldError("metadata.name", "Required value"))
        name = ""
    elif not isinstance(name, str):
        errors.append(FieldError("metadata.name", "must be of type string"))
        name = ""
    elif message := name_check(name):
        errors.append(FieldError("metadata.name", message))
    namespace = value.get("namespace")
    if not namespaced:
        namespace = ""
    elif namespace is None or namespace == "":
        namespace = default_namespace
    elif not isinstance(namespace, str):
        errors.append(FieldError("metadata.namespace", "must be of type string"))
        namespace = default_namespace
    elif message := check_dns1123_label(namespace):
        errors.append(FieldError("metadata.namespace", message))
    labels = _string_map(value.get("labels"), "metadata.labels", errors)
    check_labels(labels, "metadata.labels", errors)
    annotations = _string_map(value.get("annotations"), "metadata.annotations", errors)
    size = sum(len(f"{k}{v}".encode("utf-8", "surrogatepass")) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        errors.append(
            FieldError(
                "metadata.annotations",
                f"Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes, has {size}",
            )
        )
    resource_version = value.get("resourceVersion") or ""
    if not isinstance(resource_version, str):
        resource_version = str(resource_version)
    meta = ObjectMeta(
        name=name,
        namespace=namespace,
        labels=FrozenDict(labels),
        annotations=FrozenDict(annotations),
        resource_version=resource_version,
        origin=origin,
        creation_timestamp=parse_creation_timestamp(value.get("creationTimestamp"), errors),
    )
    return meta
