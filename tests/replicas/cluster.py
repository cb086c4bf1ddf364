"""A Kubernetes API test double serving what replicas of the control plane read and write."""

from __future__ import annotations

from kubernetes import client

from tests.faults.test_kubernetes_outage import kubeconfig
from tests.kube_double.server import KubeApiDouble

__all__ = ["api_client_for", "cluster_double", "kubeconfig"]

NAMESPACES = "/api/v1/namespaces"
SERVICES = "/api/v1/services"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
PODS = "/api/v1/pods"
SECRETS = "/api/v1/secrets"
CONFIGMAPS = "/api/v1/configmaps"
LEASES = "/apis/coordination.k8s.io/v1/leases"
VIRTUAL_SERVICES = "/apis/networking.istio.io/v1/virtualservices"
DESTINATION_RULES = "/apis/networking.istio.io/v1/destinationrules"
SIDECARS = "/apis/networking.istio.io/v1/sidecars"

COLLECTIONS = {
    NAMESPACES: ("Namespace", "v1"),
    SERVICES: ("Service", "v1"),
    SLICES: ("EndpointSlice", "discovery.k8s.io/v1"),
    PODS: ("Pod", "v1"),
    SECRETS: ("Secret", "v1"),
    CONFIGMAPS: ("ConfigMap", "v1"),
    LEASES: ("Lease", "coordination.k8s.io/v1"),
    VIRTUAL_SERVICES: ("VirtualService", "networking.istio.io/v1"),
    DESTINATION_RULES: ("DestinationRule", "networking.istio.io/v1"),
    SIDECARS: ("Sidecar", "networking.istio.io/v1"),
}


def cluster_double() -> KubeApiDouble:
    double = KubeApiDouble()
    for path, (kind, api_version) in COLLECTIONS.items():
        double.serve(path, kind, api_version)
    for name in ("istio-system", "default", "kube-system"):
        double.upsert(NAMESPACES, {"metadata": {"name": name}})
    return double


def api_client_for(double: KubeApiDouble) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = double.url
    return client.ApiClient(configuration)
