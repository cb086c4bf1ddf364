"""Who the simulated sidecars are: Istio node ids and metadata, spread over workload groups.

Proxy ``i`` is a pod of service ``svc-<i % groups>`` (labels app/version, its namespace and
service account), so proxies of one group get the same configuration and different groups
differ in their inbound side, as replicas of a few deployments would.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from controlplane.model.node import SIDECAR, node_id


@dataclass(frozen=True)
class ProxyIdentity:
    index: int
    group: int
    namespace: str
    ip: str

    @property
    def workload(self) -> str:
        return f"svc-{self.group}"

    @property
    def pod(self) -> str:
        return f"{self.workload}-load-{self.index}"

    @property
    def node_id(self) -> str:
        return node_id(SIDECAR, self.ip, self.pod, self.namespace)

    @property
    def cluster(self) -> str:
        """node.cluster, ``<workload>.<namespace>`` (the floor keys its resources on it)."""
        return f"{self.workload}.{self.namespace}"


def identity(index: int, groups: int, namespaces: int) -> ProxyIdentity:
    group = index % groups
    return ProxyIdentity(
        index=index,
        group=group,
        namespace=f"ns-{group % namespaces}",
        ip=f"10.200.{index // 250 % 250}.{index % 250 + 1}",
    )


def node(proxy: ProxyIdentity) -> base_pb2.Node:
    metadata = struct_pb2.Struct()
    metadata.update({
        "NAMESPACE": proxy.namespace,
        "SERVICE_ACCOUNT": proxy.workload,
        "LABELS": {"app": proxy.workload, "version": "v1"},
        "INSTANCE_IPS": proxy.ip,
        "WORKLOAD_NAME": proxy.workload,
    })
    return base_pb2.Node(
        id=proxy.node_id, cluster=proxy.cluster, metadata=metadata, user_agent_name="benchmark"
    )
