"""Typed, frozen models of every input kind, parsed and validated from plain dicts.

Public API
----------
``parse(doc, origin=None, *, default_namespace="default") -> Resource``
    One document (a dict as loaded from YAML/JSON or the Kubernetes API) to its frozen
    model: ``Service``, ``EndpointSlice``, ``VirtualService``, ... Raises ``ValidationError``
    (``.errors`` is a list of ``FieldError`` with paths such as
    ``spec.http[0].route[1].destination.host``; ``.key`` and ``.origin`` are set) when the
    document is invalid, and ``UnsupportedKind`` (a ``LookupError``, *not* a ValidationError)
    for kinds the model does not know, such as ``apps/v1 Deployment``: skip those.

``parse_with_warnings(doc, origin=None, *, default_namespace="default")``
    The same, returning ``(resource, warnings)``; warnings are ``FieldError`` with
    ``severity == "warning"`` (e.g. a DestinationRule subset without labels).

``is_supported(api_version, kind) -> bool``, ``supported_kinds()``, ``KINDS``, ``BY_KIND``
    The kind registry: which (group, kind) pairs are modelled and under which versions.

Helpers, each the one implementation of its concept: ``hosts`` (``host_matches``,
``hosts_overlap``, ``resolve_short_name``, ``service_fqdn``, ``split_namespaced_host``,
``DEFAULT_DOMAIN_SUFFIX``; case-insensitive), ``labels`` (``selector_matches``,
``service_selects``, ``selector_labels``) and ``node`` (Istio's node id and metadata:
``parse_node``, ``node_id``).

Conventions of the models: Python snake_case attributes (the document's camelCase stays in
the parser and in error paths), tuples for lists, ``FrozenDict`` (a read-only, hashable dict)
for maps, ``Literal`` strings for enums with Istio's proto defaults, ``None`` for absent
messages and optional scalars, ``datetime.timedelta`` for durations.
"""

from __future__ import annotations

from controlplane.model.base import (
    FieldError,
    ObjectMeta,
    Origin,
    Resource,
    ResourceKey,
    ValidationError,
)
from controlplane.model.destination_rule import DestinationRule
from controlplane.model.frozen import FrozenDict
from controlplane.model.gateway import Gateway
from controlplane.model.hosts import (
    host_matches,
    hosts_overlap,
    resolve_short_name,
    service_fqdn,
    split_namespaced_host,
)
from controlplane.model.kubernetes import (
    SERVICE_NAME_LABEL,
    Endpoints,
    EndpointSlice,
    Namespace,
    Pod,
    Secret,
    Service,
    ServiceAccount,
)
from controlplane.model.labels import selector_matches, service_selects
from controlplane.model.parse import UnsupportedKind, parse, parse_with_warnings
from controlplane.model.registry import BY_KIND, KINDS, KindInfo, is_supported, supported_kinds
from controlplane.model.security import (
    AuthorizationPolicy,
    PeerAuthentication,
    RequestAuthentication,
)
from controlplane.model.service_entry import ServiceEntry, WorkloadEntry
from controlplane.model.sidecar import Sidecar
from controlplane.model.telemetry import Telemetry
from controlplane.model.virtual_service import VirtualService

__all__ = [
    "BY_KIND",
    "KINDS",
    "SERVICE_NAME_LABEL",
    "AuthorizationPolicy",
    "DestinationRule",
    "EndpointSlice",
    "Endpoints",
    "FieldError",
    "FrozenDict",
    "Gateway",
    "KindInfo",
    "Namespace",
    "ObjectMeta",
    "Origin",
    "PeerAuthentication",
    "Pod",
    "RequestAuthentication",
    "Resource",
    "ResourceKey",
    "Secret",
    "Service",
    "ServiceAccount",
    "ServiceEntry",
    "Sidecar",
    "Telemetry",
    "UnsupportedKind",
    "ValidationError",
    "VirtualService",
    "WorkloadEntry",
    "host_matches",
    "hosts_overlap",
    "is_supported",
    "parse",
    "parse_with_warnings",
    "resolve_short_name",
    "selector_matches",
    "service_fqdn",
    "service_selects",
    "split_namespaced_host",
    "supported_kinds",
]
