"""The proxy being configured: who it is, parsed from the Envoy node it sends.

The node id and metadata are read by ``controlplane.model.node`` (the same reader the
credential check uses); this module adds what only the protobuf Node has (locality).
Metadata is what the proxy claims; the xDS layer decides what to trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX
from controlplane.model.locality import Locality, proxy_locality
from controlplane.model.node import (
    INTERCEPTION_NONE,
    INTERCEPTION_REDIRECT,
    ROUTER,
    SIDECAR,
    NodeParseError,
    node_id,
)
from controlplane.model.node import parse_node as parse_node_id

__all__ = [
    "INTERCEPTION_NONE",
    "INTERCEPTION_REDIRECT",
    "ROUTER",
    "SIDECAR",
    "Locality",
    "NodeParseError",
    "Proxy",
    "parse_node",
]


@dataclass(frozen=True, slots=True)
class Proxy:
    kind: str  # "sidecar" or "router"
    id: str
    namespace: str
    service_account: str = "default"  # from a node: "" when it claims none (model.node)
    labels: tuple[tuple[str, str], ...] = ()
    ips: tuple[str, ...] = ()
    workload_name: str = ""
    pod_name: str = ""
    interception_mode: str = INTERCEPTION_REDIRECT
    locality: Locality = field(default_factory=Locality)
    # Is the proxy given its SVID over SDS (it proved an identity)? As in Istio, yes unless the
    # runtime says otherwise; without one, auto mTLS and PERMISSIVE fall back to plaintext.
    has_certificate: bool = True
    istio_version: str = ""  # node metadata ISTIO_VERSION (EnvoyFilter proxyVersion matches it)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @staticmethod
    def make(
        kind: str,
        namespace: str,
        *,
        labels: Mapping[str, str] | None = None,
        ips: tuple[str, ...] | list[str] = (),
        service_account: str = "default",
        workload_name: str = "",
        pod_name: str = "",
        interception_mode: str = INTERCEPTION_REDIRECT,
        locality: Locality | None = None,
        domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
    ) -> Proxy:
        """Build a Proxy with a node id in Istio's form (tests, local runs)."""
        ip = ips[0] if ips else "127.0.0.1"
        pod = pod_name or workload_name or "proxy"
        return Proxy(
            kind=kind,
            id=node_id(kind, ip, pod, namespace, domain_suffix),
            namespace=namespace,
            service_account=service_account,
            labels=tuple(sorted((labels or {}).items())),
            ips=tuple(ips),
            workload_name=workload_name,
            pod_name=pod,
            interception_mode=interception_mode,
            locality=proxy_locality(labels or {}, locality),  # as parse_node: labels first
        )


def _struct_to_dict(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(struct) if struct is not None else {}


def parse_node(node: base_pb2.Node) -> Proxy:
    """Proxy from an ``envoy.config.core.v3.Node`` (id, metadata, locality)."""
    info = parse_node_id(node.id, _struct_to_dict(node.metadata) if node.HasField("metadata") else {})
    loc = node.locality if node.HasField("locality") else None
    node_locality = Locality(loc.region, loc.zone, loc.sub_zone) if loc is not None else None
    return Proxy(
        kind=info.kind,
        id=info.id,
        namespace=info.namespace,
        service_account=info.service_account,
        labels=info.labels,
        ips=info.ips,
        workload_name=info.workload_name,
        pod_name=info.pod_name,
        interception_mode=info.interception_mode,
        istio_version=info.istio_version,
        # Istio's order: the proxy's topology or locality labels, else the node's locality.
        locality=proxy_locality(dict(info.labels), node_locality),
    )
