"""The proxy being configured: who it is, parsed from the Envoy node it sends.

Istio's node id is ``<kind>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>`` and
the node metadata carries NAMESPACE, SERVICE_ACCOUNT, LABELS, INSTANCE_IPS,
WORKLOAD_NAME (and INTERCEPTION_MODE). Metadata is what the proxy claims; the xDS
layer decides what to trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SIDECAR = "sidecar"
ROUTER = "router"

INTERCEPTION_REDIRECT = "REDIRECT"
INTERCEPTION_NONE = "NONE"


class NodeParseError(ValueError):
    """The node id or metadata does not describe a proxy we can configure."""


@dataclass(frozen=True, slots=True)
class Locality:
    region: str = ""
    zone: str = ""
    subzone: str = ""


@dataclass(frozen=True, slots=True)
class Proxy:
    kind: str  # "sidecar" or "router"
    id: str
    namespace: str
    service_account: str = "default"
    labels: tuple[tuple[str, str], ...] = ()
    ips: tuple[str, ...] = ()
    workload_name: str = ""
    pod_name: str = ""
    interception_mode: str = INTERCEPTION_REDIRECT
    locality: Locality = field(default_factory=Locality)
    # Is the proxy given its SVID over SDS (it proved an identity)? As in Istio, yes unless the
    # runtime says otherwise; without one, auto mTLS and PERMISSIVE fall back to plaintext.
    has_certificate: bool = True

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
        domain_suffix: str = "cluster.local",
    ) -> Proxy:
        """Build a Proxy with a node id in Istio's form (tests, local runs)."""
        ip = ips[0] if ips else "127.0.0.1"
        pod = pod_name or workload_name or "proxy"
        node_id = f"{kind}~{ip}~{pod}.{namespace}~{namespace}.svc.{domain_suffix}"
        return Proxy(
            kind=kind,
            id=node_id,
            namespace=namespace,
            service_account=service_account,
            labels=tuple(sorted((labels or {}).items())),
            ips=tuple(ips),
            workload_name=workload_name,
            pod_name=pod,
            interception_mode=interception_mode,
            locality=locality or Locality(),
        )


def _struct_to_dict(struct: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(struct) if struct is not None else {}


def parse_node(node: Any) -> Proxy:
    """Proxy from an ``envoy.config.core.v3.Node`` (id, metadata, locality)."""
    parts = node.id.split("~")
    if len(parts) != 4:
        raise NodeParseError(f"node id {node.id!r}: want kind~ip~pod.namespace~namespace.svc.domain")
    kind, ip, pod_dot_ns, dns_domain = parts
    if kind not in (SIDECAR, ROUTER):
        raise NodeParseError(f"node id {node.id!r}: kind {kind!r} is not sidecar or router")
    meta = _struct_to_dict(node.metadata) if node.HasField("metadata") else {}
    pod, _, ns_from_pod = pod_dot_ns.partition(".")
    namespace = str(meta.get("NAMESPACE") or ns_from_pod or dns_domain.split(".")[0])
    if not namespace:
        raise NodeParseError(f"node id {node.id!r}: no namespace")
    raw_labels = meta.get("LABELS") or {}
    if not isinstance(raw_labels, dict):
        raise NodeParseError("node metadata LABELS must be a map")
    ips_raw = meta.get("INSTANCE_IPS") or ip
    ips = tuple(p.strip() for p in str(ips_raw).split(",") if p.strip())
    mode = str(meta.get("INTERCEPTION_MODE") or INTERCEPTION_REDIRECT).upper()
    loc = node.locality if node.HasField("locality") else None
    return Proxy(
        kind=kind,
        id=node.id,
        namespace=namespace,
        service_account=str(meta.get("SERVICE_ACCOUNT") or "default"),
        labels=tuple(sorted((str(k), str(v)) for k, v in raw_labels.items())),
        ips=ips,
        workload_name=str(meta.get("WORKLOAD_NAME") or ""),
        pod_name=pod,
        interception_mode=mode,
        locality=Locality(loc.region, loc.zone, loc.sub_zone) if loc is not None else Locality(),
    )
