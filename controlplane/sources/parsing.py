"""From a loaded document to a model resource, or to diagnostics with field lines.

The one place sources call ``controlplane.model.parse``; it also tells apart kinds
the model does not support (Deployment, ServiceAccount: skipped, not errors).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.model.base import FieldError, Origin, Resource, ResourceKey, ValidationError
from controlplane.model.parse import UnsupportedKind, parse_with_warnings
from controlplane.sources.diagnostics import ERROR, WARNING, Diagnostic
from controlplane.sources.yaml_loader import Document

log = logging.getLogger(__name__)

# Problems reported per document: each is a log line and a configz entry, and a generated
# file with 10,000 bad routes would otherwise log 10,000 lines on every save.
MAX_DIAGNOSTICS = 100

# Kinds without a namespace, for naming a resource the model could not parse.
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "PersistentVolume",
        "StorageClass",
    }
)


@dataclass(frozen=True, slots=True)
class Parsed:
    """The outcome for one document. ``key`` is known whenever the raw document names
    its kind and name, even when it failed validation (so the last good version can
    be kept); ``resource`` is None when it failed or its kind is unsupported."""

    document: Document
    key: ResourceKey | None
    resource: Resource | None
    diagnostics: tuple[Diagnostic, ...] = ()
    unsupported: bool = False

    @property
    def failed(self) -> bool:
        return self.resource is None and not self.unsupported


def identity(body: Mapping[str, Any], default_namespace: str = "default") -> ResourceKey | None:
    """The key a raw document claims, or None when it lacks a kind or a name."""
    kind = body.get("kind")
    meta = body.get("metadata")
    if not isinstance(kind, str) or not kind or not isinstance(meta, Mapping):
        return None
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind in CLUSTER_SCOPED:
        return ResourceKey(kind, "", name)
    namespace = meta.get("namespace")
    return ResourceKey(
        kind, namespace if isinstance(namespace, str) and namespace else default_namespace, name
    )


def _parse(
    body: dict[str, Any], origin: Origin, default_namespace: str
) -> tuple[Resource, list[FieldError]]:
    resource, warnings = parse_with_warnings(body, origin, default_namespace=default_namespace)
    return resource, list(warnings)


def parse_document(document: Document, default_namespace: str = "default") -> Parsed:
    body = document.body
    key = identity(body, default_namespace)
    try:
        resource, warnings = _parse(body, document.origin, default_namespace)
    except UnsupportedKind:
        return Parsed(document, key, None, unsupported=True)
    except ValidationError as exc:
        found_key = exc.key or key
        shown = exc.errors[: MAX_DIAGNOSTICS + 1]  # a line for each costs a search
        diagnostics = tuple(_diagnostic(document, found_key, e) for e in shown)
        if not any(d.is_error for d in diagnostics):
            message = str(exc) or "invalid"
            diagnostics += (Diagnostic(document.origin, found_key, "", message, ERROR),)
        hidden = len(exc.errors) - len(shown)
        return Parsed(
            document, found_key, None, _bounded(document, found_key, diagnostics, hidden)
        )
    except Exception as exc:
        # A bug, or input no validator foresaw: this document fails, while the other
        # documents and files are still read (an exception here used to stop the folder).
        log.exception("%s: validating the document failed", document.origin)
        message = f"cannot be validated: {type(exc).__name__}: {exc}"
        return Parsed(document, key, None, (Diagnostic(document.origin, key, "", message),))
    resource_key = resource.key
    return Parsed(
        document,
        resource_key,
        resource,
        _bounded(
            document,
            resource_key,
            tuple(_diagnostic(document, resource_key, w, WARNING) for w in warnings),
        ),
    )


def _bounded(
    document: Document,
    key: ResourceKey | None,
    diagnostics: tuple[Diagnostic, ...],
    hidden: int = 0,
) -> tuple[Diagnostic, ...]:
    """At most MAX_DIAGNOSTICS, then one that counts the rest (``hidden`` more not built)."""
    if len(diagnostics) <= MAX_DIAGNOSTICS:
        return diagnostics
    rest = diagnostics[MAX_DIAGNOSTICS:]
    severity = ERROR if any(d.is_error for d in rest) else WARNING
    more = f"{len(rest) + hidden:,} more problems in this resource not shown"
    return (*diagnostics[:MAX_DIAGNOSTICS], Diagnostic(document.origin, key, "", more, severity))


def _diagnostic(
    document: Document, key: ResourceKey | None, error: FieldError, severity: str | None = None
) -> Diagnostic:
    line = document.line_of(error.path)
    return Diagnostic(
        Origin(document.origin.file, line),
        key,
        error.path,
        error.message,
        severity or (error.severity if error.severity in (ERROR, WARNING) else ERROR),
    )
