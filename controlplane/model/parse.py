"""The entry points: ``parse`` and ``parse_with_warnings`` turn one plain dict into a model."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from controlplane.model.base import (
    FieldError,
    ObjectMeta,
    Origin,
    Resource,
    ResourceKey,
    ValidationError,
)
from controlplane.model.decode import decode
from controlplane.model.frozen import FrozenDict
from controlplane.model.meta import parse_meta
from controlplane.model.registry import KindInfo, lookup, split_api_version

# Keys every top-level document may have besides its kind's own fields.
_ENVELOPE = ("apiVersion", "kind", "metadata")


class UnsupportedKind(LookupError):
    """A well-formed document of a kind the model does not know (e.g. apps/v1 Deployment).

    Not a ValidationError on purpose: callers skip these documents (or note them) rather
    than report them as broken.
    """

    def __init__(self, api_version: str, kind: str, origin: Origin | None = None) -> None:
        self.api_version = api_version
        self.kind = kind
        self.origin = origin or Origin()
        where = f"{self.origin}: " if str(self.origin) else ""
        super().__init__(f"{where}unsupported kind {kind} ({api_version})")


def _raise(errors: list[FieldError], key: ResourceKey | None, origin: Origin) -> None:
    raise ValidationError(errors, key=key, origin=origin)


def _secret_body(body: dict[str, Any], errors: list[FieldError]) -> None:
    """Decode ``data`` (base64) and merge ``stringData`` over it, as the API server does."""
    decoded: dict[str, bytes] = {}
    for field, encoded in (("data", True), ("stringData", False)):
        raw = body.pop(field, None)
        if raw is None:
            continue
        if not isinstance(raw, dict):
            errors.append(FieldError(field, "must be of type object"))
            continue
        for key, value in raw.items():
            path = f"{field}[{key}]"
            if not isinstance(value, str):
                errors.append(FieldError(path, "must be of type string"))
                continue
            if not encoded:
                decoded[str(key)] = value.encode()
                continue
            try:
                decoded[str(key)] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                errors.append(FieldError(path, "must be base64-encoded"))
    body["data"] = FrozenDict(decoded)


def _parse(
    doc: Any, origin: Origin, default_namespace: str
) -> tuple[Resource | None, list[FieldError], ResourceKey | None]:
    errors: list[FieldError] = []
    if not isinstance(doc, dict):
        return None, [FieldError("", "a resource must be an object (a YAML mapping)")], None
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    for name, value in (("apiVersion", api_version), ("kind", kind)):
        if value is None or value == "":
            errors.append(FieldError(name, "Required value"))
        elif not isinstance(value, str):
            errors.append(FieldError(name, "must be of type string"))
    if errors:
        return None, errors, None
    assert isinstance(api_version, str) and isinstance(kind, str)
    info = lookup(api_version, kind)
    if info is None:
        raise UnsupportedKind(api_version, kind, origin)
    if split_api_version(api_version)[1] not in info.versions:
        errors.append(
            FieldError(
                "apiVersion",
                f'Unsupported value: "{api_version}": supported values: '
                + ", ".join(f'"{v}"' for v in info.api_versions),
            )
        )
    meta = parse_meta(
        doc.get("metadata"),
        errors,
        origin=origin,
        default_namespace=default_namespace,
        namespaced=info.namespaced,
        name_check=info.name_check,
    )
    key = (
        ResourceKey(info.kind, meta.namespace, meta.name)
        if meta is not None and meta.name
        else None
    )
    resource = _decode_body(info, doc, meta, errors)
    if resource is not None and info.validate is not None and not _has_errors(errors):
        info.validate(resource, errors)
    return resource, errors, key


def _decode_body(
    info: KindInfo, doc: dict[str, Any], meta: ObjectMeta | None, errors: list[FieldError]
) -> Resource | None:
    body = {k: v for k, v in doc.items() if k not in _ENVELOPE}
    if "meta" in body:
        errors.append(FieldError("meta", "unknown field"))
        del body["meta"]
    if info.has_spec:
        body.pop("status", None)  # written by controllers, never read
        if body.get("spec") is None:
            errors.append(FieldError("spec", "Required value"))
            return None
    if info.kind == "Secret":
        _secret_body(body, errors)
    if meta is None:
        # Still decode to report every error in one pass.
        body["meta"] = ObjectMeta(name="")
    else:
        body["meta"] = meta
    result = decode(info.cls, body, "", errors)
    return None if meta is None else result


def _has_errors(errors: list[FieldError]) -> bool:
    return any(e.severity == "error" for e in errors)


def parse_with_warnings(
    doc: dict[str, Any],
    origin: Origin | None = None,
    *,
    default_namespace: str = "default",
) -> tuple[Resource, list[FieldError]]:
    """Parse and validate one document; return the model and the warnings it deserves.

    Raises ValidationError (with ``key``, ``origin`` and every field error) when invalid,
    UnsupportedKind when the kind is not modelled.
    """
    origin = origin or Origin()
    resource, errors, key = _parse(doc, origin, default_namespace)
    if resource is None or _has_errors(errors):
        _raise([e for e in errors if e.severity == "error"] or errors, key, origin)
    assert resource is not None
    return resource, [e for e in errors if e.severity != "error"]


def parse(
    doc: dict[str, Any],
    origin: Origin | None = None,
    *,
    default_namespace: str = "default",
) -> Resource:
    """Parse and validate one document into its typed, frozen model (warnings dropped)."""
    return parse_with_warnings(doc, origin, default_namespace=default_namespace)[0]
