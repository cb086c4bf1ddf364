"""What Istio's metrics say about one workload: its facts, as Istio's stats filter reads them
from the node (``WORKLOAD_NAME``, ``NAMESPACE``, the ``LABELS``) and its peers learn them.

Each sidecar's config is generated for it, so its own facts are literal text in its format
strings; the peer's facts travel in request and response headers (``PEER_HEADERS``), lifted
into dynamic metadata (``PEER_METADATA_NAMESPACE``) and removed before the app sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controlplane.model.canonical import canonical_name, canonical_revision
from controlplane.translate.endpoint_workload import (
    DEFAULT_CLUSTER_ID,
    ENDPOINT_FACTS,
    ENDPOINT_FACTS_KEY,
    UPSTREAM_HOST_METADATA,
)
from controlplane.translate.proxy import Proxy

UNKNOWN = "unknown"
LATEST = "latest"  # Istio's canonical revision when no label names one (model.canonical)


@dataclass(frozen=True, slots=True)
class WorkloadFacts:
    workload: str
    namespace: str
    app: str
    version: str
    canonical_service: str
    canonical_revision: str
    cluster: str = DEFAULT_CLUSTER_ID


def proxy_facts(proxy: Proxy) -> WorkloadFacts:
    labels = proxy.label_map
    workload = proxy.workload_name or UNKNOWN  # the node's WORKLOAD_NAME (pilot-agent sets it)
    return WorkloadFacts(
        workload=workload,
        namespace=proxy.namespace,
        app=labels.get("app") or labels.get("app.kubernetes.io/name") or UNKNOWN,
        version=labels.get("version") or labels.get("app.kubernetes.io/version") or UNKNOWN,
        canonical_service=canonical_name(labels, workload),
        canonical_revision=canonical_revision(labels),
    )


# The facts one sidecar tells the other: WorkloadFacts field -> header. The client's sidecar
# adds them to requests, the server's to responses; the receiving sidecar removes them.
PEER_HEADERS: Mapping[str, str] = {
    "workload": "x-istio-peer-workload",
    "namespace": "x-istio-peer-namespace",
    "app": "x-istio-peer-app",
    "version": "x-istio-peer-version",
    "canonical_service": "x-istio-peer-canonical-service",
    "canonical_revision": "x-istio-peer-canonical-revision",
    "cluster": "x-istio-peer-cluster",
}
# Where the receiving sidecar keeps them (dynamic metadata), read by the stats access logger.
PEER_METADATA_NAMESPACE = "istio.peer"


def peer_format(field: str) -> str:
    """The format string that reads the peer's ``field`` (set to its default when absent)."""
    return f"%DYNAMIC_METADATA({PEER_METADATA_NAMESPACE}:{field})%"


def missing_default(field: str) -> str:
    return LATEST if field == "canonical_revision" else UNKNOWN



def endpoint_peer_format(field: str) -> str | None:
    """The format string that reads the server's ``field`` from its endpoint's metadata
    (``translate.endpoint_workload``; the default where absent), for TCP, which carries no
    headers; None for the facts an endpoint does not carry (app, version)."""
    if field not in ENDPOINT_FACTS:
        return None
    # Only ``add_endpoint_facts`` writes an endpoint's ``istio`` metadata, always with the list:
    # one test keeps the expression short (it is in every tag of every TCP chain).
    path = f"{UPSTREAM_HOST_METADATA}.{ENDPOINT_FACTS_KEY}"
    index = ENDPOINT_FACTS.index(field)
    return f"%CEL(has({UPSTREAM_HOST_METADATA}) ? {path}[{index}] : '{missing_default(field)}')%"
