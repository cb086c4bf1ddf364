"""Pods in network namespaces (root and iptables), created through the webhook from the
Kubernetes API test double, captured by the injected rules, their Envoys run by the agent as
UID 1337: an unmodified client calls ``http://reviews:9080/``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from controlplane.pods.netns import missing_requirements
from tests.harness.kube import PODS
from tests.harness.pods import pod_cluster, wait_answer

pytestmark = [
    pytest.mark.envoy, pytest.mark.slow,
    pytest.mark.skipif(bool(missing_requirements()),
                       reason=f"needs {', '.join(missing_requirements())} (network namespaces, iptables)"),
]
NS = "shop"
SPIFFE = "spiffe://cluster.local/ns/shop/sa/"


def _passthrough_connections(pod) -> int:
    stats = pod.envoy_admin("/stats?filter=^cluster.PassthroughCluster.upstream_cx_total$")
    return int(stats.split(":")[1]) if ":" in stats else -1


def _xfcc_uri(answer: dict) -> str:
    xfcc = answer.get("headers", {}).get("x-forwarded-client-cert", "")
    return next((part[4:] for part in xfcc.split(";") if part.startswith("URI=")), "")


def test_captured_mesh_in_network_namespaces(tmp_path: Path) -> None:
    with pod_cluster(tmp_path) as cluster:
        cluster.namespace(NS, {"istio-injection": "enabled"})
        cluster.service("reviews", NS, 9080, {"app": "reviews"})
        v1 = cluster.pod("reviews-v1", NS, {"app": "reviews", "version": "v1"}, ports=(9080, 9090),
                         service_account="reviews",
                         annotations={"traffic.sidecar.istio.io/excludeInboundPorts": "9090"})
        v2 = cluster.pod("reviews-v2", NS, {"app": "reviews", "version": "v2"}, ports=(9080, 9090),
                         service_account="reviews",
                         annotations={"traffic.sidecar.istio.io/excludeInboundPorts": "9090"})
        client = cluster.pod("client", NS, {"app": "client"}, ports=(8000,), service_account="client",
                             annotations={"traffic.sidecar.istio.io/excludeOutboundPorts": "9090"})
        plain = cluster.pod("legacy", NS, {"app": "legacy", "sidecar.istio.io/inject": "false"}, ports=(8000,))
        assert v1.injected and v2.injected and client.injected and not plain.injected
        assert client.envoy_uids() == [1337] and v1.envoy_uids() == [1337]  # the agent's Envoy

        # An unmodified client reaches the Service, spread over both pods, through both sidecars
        # with mutual TLS: the server app sees the caller's SPIFFE ID.
        answer = wait_answer(client, "http://reviews:9080/", lambda s, a: s == 200 and a.get("name", "").startswith("reviews"))
        assert _xfcc_uri(answer) == f"{SPIFFE}client"
        seen = Counter(client.curl("http://reviews:9080/")[1].get("name") for _ in range(20))
        assert set(seen) == {"reviews-v1", "reviews-v2"}, seen

        # A VirtualService split applies (all to v2).
        cluster.apply("DestinationRule", {"metadata": {"name": "reviews", "namespace": NS}, "spec": {
            "host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                           {"name": "v2", "labels": {"version": "v2"}}]}})
        cluster.apply("VirtualService", {"metadata": {"name": "reviews", "namespace": NS}, "spec": {
            "hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 0},
                                                      {"destination": {"host": "reviews", "subset": "v2"}, "weight": 100}]}]}})
        wait_answer(client, "http://reviews:9080/",
                    lambda s, a: [client.curl("http://reviews:9080/")[1].get("name") for _ in range(5)] == ["reviews-v2"] * 5)

        # PeerAuthentication STRICT: the pod without a sidecar is refused; its plaintext call
        # on the port excluded by annotation bypasses Envoy and still reaches the app.
        status, answer = plain.curl(f"http://{v1.ip}:9080/")
        assert status == 200 and answer.get("name") == "reviews-v1"  # PERMISSIVE: plaintext accepted
        cluster.apply("PeerAuthentication", {"metadata": {"name": "default", "namespace": NS},
                                             "spec": {"mtls": {"mode": "STRICT"}}})
        wait_answer(plain, f"http://{v1.ip}:9080/", lambda s, a: s != 200)
        status, answer = plain.curl(f"http://{v1.ip}:9090/")
        assert status == 200 and answer.get("name") == "reviews-v1"
        assert "x-forwarded-client-cert" not in answer["headers"]  # never went through Envoy
        assert answer["peer"] == plain.ip
        # Outbound too: the client's call to an excluded port never reaches its own Envoy.
        before = _passthrough_connections(client)
        status, answer = client.curl(f"http://{v1.ip}:9090/")
        assert status == 200 and answer["peer"] == client.ip and "x-forwarded-client-cert" not in answer["headers"]
        assert _passthrough_connections(client) == before
        client.curl(f"http://{v1.ip}:9091/")  # not excluded: captured, to PassthroughCluster
        assert _passthrough_connections(client) > before

        # Meanwhile the mesh still works under STRICT.
        status, answer = client.curl("http://reviews:9080/")
        assert status == 200 and _xfcc_uri(answer) == f"{SPIFFE}client"

        # The API refuses a pod whose annotation the webhook cannot honour; nothing is stored.
        bad = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="bad", annotations={
            "traffic.sidecar.istio.io/includeInboundPorts": "http"}),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="app", image="echo")]))
        with pytest.raises(ApiException) as refused:
            cluster.api.create_namespaced_pod(NS, bad)
        assert refused.value.status == 400 and "includeInboundPorts" in refused.value.body
        assert cluster.kube.get(PODS, NS, "bad") is None
