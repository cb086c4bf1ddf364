"""A server's workload facts in its endpoints' metadata, as Istio's (for the client's metrics
where no headers carry them: TCP).

Istio's LbEndpoint ``metadata.filter_metadata["istio"]["workload"]`` is
``<workload>;<namespace>;<canonical service>;<canonical revision>;<cluster>`` (istio/proxy
``convertEndpointMetadata``). Stock Envoy's stats access logger cannot split it (its format
strings have no CEL string extension), so the same facts also go as a list under ``facts``
that the loggers index (``istio_metrics.workload.endpoint_peer_format``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from controlplane.model.canonical import canonical_name, canonical_revision

# Istio's cluster id when none is configured (its CLUSTER_ID default).
DEFAULT_CLUSTER_ID = "Kubernetes"
ENDPOINT_METADATA_NAMESPACE = "istio"
ENDPOINT_WORKLOAD_KEY = "workload"  # Istio's string
ENDPOINT_FACTS_KEY = "facts"  # the same, as a list
ENDPOINT_FACTS = ("workload", "namespace", "canonical_service", "canonical_revision", "cluster")
# Where a CEL expression in an access log finds them.
UPSTREAM_HOST_METADATA = f"xds.upstream_host_metadata.filter_metadata.{ENDPOINT_METADATA_NAMESPACE}"


def endpoint_facts(workload: str, namespace: str, labels: Mapping[str, str]) -> tuple[str, ...]:
    """In ``ENDPOINT_FACTS`` order: what the workload's own sidecar reports of itself
    (``istio_metrics.workload.proxy_facts``), app and version aside (Istio's encoding has neither)."""
    return (workload, namespace, canonical_name(labels, workload), canonical_revision(labels), DEFAULT_CLUSTER_ID)


def add_endpoint_facts(
    metadata: base_pb2.Metadata, workload: str, namespace: str, labels: tuple[tuple[str, str], ...]
) -> None:
    metadata.filter_metadata[ENDPOINT_METADATA_NAMESPACE].MergeFrom(_facts_struct(workload, namespace, labels))


@functools.lru_cache(maxsize=65536)
def _facts_struct(workload: str, namespace: str, labels: tuple[tuple[str, str], ...]) -> struct_pb2.Struct:
    """Built once per workload instance (an endpoint is in several clusters: its service's
    and its subsets'); callers copy it, never change it."""
    facts = endpoint_facts(workload, namespace, dict(labels))
    istio = struct_pb2.Struct()
    istio.fields[ENDPOINT_WORKLOAD_KEY].string_value = ";".join(facts)
    istio.fields[ENDPOINT_FACTS_KEY].list_value.values.extend(struct_pb2.Value(string_value=f) for f in facts)
    return istio
