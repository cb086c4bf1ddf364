"""Reaching the Kubernetes API test double (tests/kube_double/server.py) the way the control
plane and tests do: a kubeconfig file for ``controlplane serve --kubeconfig``, or an official
client ``ApiClient`` for code run in the test's own process."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import client

from tests.kube_double.server import KubeApiDouble

# Collection paths, as the API serves them (and the double, once ``serve``d).
NAMESPACES = "/api/v1/namespaces"
SERVICES = "/api/v1/services"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
PODS = "/api/v1/pods"
SECRETS = "/api/v1/secrets"
CONFIGMAPS = "/api/v1/configmaps"
LEASES = "/apis/coordination.k8s.io/v1/leases"
MUTATING_WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
VIRTUAL_SERVICES = "/apis/networking.istio.io/v1/virtualservices"
DESTINATION_RULES = "/apis/networking.istio.io/v1/destinationrules"
SIDECARS = "/apis/networking.istio.io/v1/sidecars"
# path -> (kind, apiVersion), for KubeApiDouble.serve
KINDS = {
    NAMESPACES: ("Namespace", "v1"),
    SERVICES: ("Service", "v1"),
    SLICES: ("EndpointSlice", "discovery.k8s.io/v1"),
    PODS: ("Pod", "v1"),
    SECRETS: ("Secret", "v1"),
    CONFIGMAPS: ("ConfigMap", "v1"),
    LEASES: ("Lease", "coordination.k8s.io/v1"),
    MUTATING_WEBHOOKS: ("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1"),
    VIRTUAL_SERVICES: ("VirtualService", "networking.istio.io/v1"),
    DESTINATION_RULES: ("DestinationRule", "networking.istio.io/v1"),
    SIDECARS: ("Sidecar", "networking.istio.io/v1"),
}


def kubeconfig(path: Path, url: str) -> Path:
    """Write a kubeconfig for the API at ``url`` (a bearer token the double ignores)."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
        "current-context": "double",
    }))  # fmt: skip
    return path


def api_client_for(double: KubeApiDouble) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = double.url
    return client.ApiClient(configuration)
