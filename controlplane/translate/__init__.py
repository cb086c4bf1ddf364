"""Pure translation: (input snapshot, proxy) -> Envoy xDS resources. No I/O, no clock.

Layout: ``index/`` (the push context built once per snapshot: services and endpoints,
routing rules, policies), ``builders/`` (one per proxy kind: sidecar, gateway),
``filters/`` (the HTTP and network filter registry, one module per filter), and the
feature modules builders share (clusters, endpoints, routes, listeners, transport, ...).

Public API (see translator.py): ``push_context``, ``translate``, ``endpoints``,
``group_key``; ``Proxy``/``parse_node`` (proxy.py); ``MeshConfig`` (model/mesh.py).
"""

from controlplane.model.mesh import MeshConfig, RetryDefaults
from controlplane.translate.errors import TranslationError
from controlplane.translate.index.context import (
    PushContext,
    update_push_context,
    update_push_context_endpoints,
)
from controlplane.translate.proxy import Locality, NodeParseError, Proxy, parse_node
from controlplane.translate.translator import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    GroupKey,
    endpoints,
    group_key,
    push_context,
    translate,
)

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "EXTENSION_CONFIG_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "SECRET_TYPE",
    "GroupKey",
    "Locality",
    "MeshConfig",
    "NodeParseError",
    "Proxy",
    "PushContext",
    "RetryDefaults",
    "TranslationError",
    "endpoints",
    "group_key",
    "parse_node",
    "push_context",
    "translate",
    "update_push_context",
    "update_push_context_endpoints",
]
