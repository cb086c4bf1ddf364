"""Pure translation: (input snapshot, proxy) -> Envoy xDS resources. No I/O, no clock.

Public API (see translator.py): ``push_context``, ``translate``, ``endpoints``,
``group_key``; ``Proxy``/``parse_node`` (proxy.py); ``MeshConfig`` (mesh.py).
"""

from controlplane.model.mesh import MeshConfig, RetryDefaults
from controlplane.translate.proxy import Locality, NodeParseError, Proxy, parse_node
from controlplane.translate.index.context import PushContext
from controlplane.translate.translator import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    endpoints,
    group_key,
    push_context,
    translate,
)

__all__ = [
    "CLUSTER_TYPE",
    "ENDPOINT_TYPE",
    "LISTENER_TYPE",
    "ROUTE_TYPE",
    "SECRET_TYPE",
    "Locality",
    "MeshConfig",
    "NodeParseError",
    "Proxy",
    "PushContext",
    "RetryDefaults",
    "endpoints",
    "group_key",
    "parse_node",
    "push_context",
    "translate",
]
