"""Gateway API backend policies in the translator. BackendTLSPolicy: its rule merged under a
user-written DestinationRule of the same host (the user's fields win, the policy fills the
gaps), the cluster's TLS from the merge, and its CA ConfigMap served to any proxy calling the
backend but never to a user-written rule naming a ConfigMap. XBackendTrafficPolicy: the
cluster's retry budget, beside the TLS of a BackendTLSPolicy for the same Service. Istio's corpus
(backend-*-policy*) covers the conversion and status; test_bookinfo_envoy.py the traffic
through a real Envoy."""

from __future__ import annotations

from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from controlplane.model import parse
from controlplane.translate import push_context, translate
from controlplane.translate.builders.credentials import proxy_credentials
from controlplane.xds import types
from tests.harness.pki import LocalCA
from tests.translate.support import mesh_from, proxy_from, snapshot_of

CA = LocalCA("backend-ca")
CLUSTER = "outbound|443||secure.shop.svc.cluster.local"
CREDENTIAL = "configmap://shop/backend-ca-cacert"


def _documents(user_rule: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "secure", "namespace": "shop"},
         "spec": {"selector": {"app": "secure"}, "ports": [{"name": "https", "port": 443}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "backend-ca", "namespace": "shop"},
         "data": {"ca.crt": CA.pem.decode()}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "private-ca", "namespace": "infra"},
         "data": {"ca.crt": LocalCA("private").pem.decode()}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
         "metadata": {"name": "secure", "namespace": "shop"},
         "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "secure"}],
                  "validation": {"hostname": "secure.example.com",
                                 "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "backend-ca"}],
                                 "subjectAltNames": [{"type": "Hostname", "hostname": "secure.example.com"}]}}},
    ]
    if user_rule is not None:
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                     "metadata": {"name": "secure", "namespace": "shop"},
                     "spec": {"host": "secure", "trafficPolicy": user_rule}})
    return docs


def _context(user_rule: dict[str, Any] | None = None) -> Any:
    return push_context(snapshot_of([parse(d) for d in _documents(user_rule)]), mesh_from({}))


def _upstream_tls(ctx: Any, proxy: Any) -> tuple[Any, tls_pb2.UpstreamTlsContext | None]:
    cluster = next(c for c in translate(ctx, proxy)[types.CLUSTER] if c.name == CLUSTER)
    if not cluster.HasField("transport_socket"):
        return cluster, None
    tls = tls_pb2.UpstreamTlsContext()
    cluster.transport_socket.typed_config.Unpack(tls)
    return cluster, tls


def test_the_policy_makes_the_cluster_verify_the_backend_with_the_config_map_ca() -> None:
    ctx = _context()
    caller = proxy_from({"namespace": "web"})
    _, tls = _upstream_tls(ctx, caller)
    assert tls is not None and tls.sni == "secure.example.com"
    combined = tls.common_tls_context.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == CREDENTIAL
    assert [m.matcher.exact for m in combined.default_validation_context.match_typed_subject_alt_names] == [
        "secure.example.com"]
    served = proxy_credentials(ctx, caller, (CREDENTIAL,))  # a proxy of any namespace may verify with it
    assert served[CREDENTIAL].validation_context.trusted_ca.inline_bytes.strip() == CA.pem.strip()


def test_a_user_rule_keeps_its_fields_and_takes_the_policy_tls_where_it_sets_none() -> None:
    ctx = _context({"loadBalancer": {"simple": "LEAST_REQUEST"}})
    cluster, tls = _upstream_tls(ctx, proxy_from({"namespace": "web"}))
    assert cluster.lb_policy == cluster.LEAST_REQUEST  # the user's
    assert tls is not None and tls.sni == "secure.example.com"  # the policy's
    ctx = _context({"tls": {"mode": "DISABLE"}})
    _, tls = _upstream_tls(ctx, proxy_from({"namespace": "web"}))
    assert tls is None  # the user's TLS setting wins


def test_a_user_rule_cannot_read_a_config_map_through_credential_name() -> None:
    ctx = _context()
    assert proxy_credentials(ctx, proxy_from({"namespace": "infra"}), ("configmap://infra/private-ca-cacert",)) == {}


def test_a_traffic_policy_gives_the_cluster_its_retry_budget_beside_the_tls_policy() -> None:
    docs = _documents() + [{
        "apiVersion": "gateway.networking.x-k8s.io/v1alpha1", "kind": "XBackendTrafficPolicy",
        "metadata": {"name": "retries", "namespace": "shop"},
        "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "secure"}],
                 "retryConstraint": {"budget": {"percent": 30, "interval": "10s"},
                                     "minRetryRate": {"count": 5, "interval": "1s"}}}}]
    ctx = push_context(snapshot_of([parse(d) for d in docs]), mesh_from({}))
    cluster, tls = _upstream_tls(ctx, proxy_from({"namespace": "web"}))
    budget = cluster.circuit_breakers.thresholds[0].retry_budget
    assert (budget.budget_percent.value, budget.min_retry_concurrency.value) == (30.0, 5)
    assert tls is not None and tls.sni == "secure.example.com"  # the TLS policy's part of the same rule
    without = push_context(snapshot_of([parse(d) for d in _documents()]), mesh_from({}))
    cluster, _ = _upstream_tls(without, proxy_from({"namespace": "web"}))
    assert not cluster.circuit_breakers.thresholds[0].HasField("retry_budget")
