"""What the translator makes of mTLS settings: inbound chains per PeerAuthentication mode,
auto mTLS on clusters and endpoints, XFCC for the app, and the fallback for proxies that
hold no certificate. Envoy itself must accept the output."""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from controlplane.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    MeshConfig,
    Proxy,
    push_context,
    translate,
)
from tests.translate.support import envoy_validate, load_documents, localized_bootstrap, snapshot_of

ADDR = "127.0.40.1"


def _mesh(extra: str = "") -> str:
    return textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: reviews}
        spec:
          clusterIP: 10.96.0.12
          selector: {app: reviews}
          ports: [{name: http, port: 9080}, {name: tcp-db, port: 5432}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, labels: {app: reviews, security.istio.io/tlsMode: istio}}
        spec: {serviceAccountName: reviews}
        status: {podIP: 10.1.0.3}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: reviews-1, labels: {kubernetes.io/service-name: reviews}}
        addressType: IPv4
        ports: [{name: http, port: 9080}, {name: tcp-db, port: 5432}]
        endpoints:
        - addresses: [10.1.0.3]
          targetRef: {kind: Pod, name: reviews-v1}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: reviews}
        spec:
          workloadSelector: {labels: {app: reviews}}
          ingress:
          - port: {number: 9080, protocol: HTTP, name: http}
            defaultEndpoint: 127.0.0.1:8000
            captureMode: NONE
          - port: {number: 5432, protocol: TCP, name: tcp}
            defaultEndpoint: 127.0.0.1:8001
            captureMode: NONE
          egress: [{hosts: ["./*"]}]
        """) + extra


def _translate(yaml_text: str, *, certificate: bool = True, mesh: MeshConfig | None = None) -> dict[str, list[Any]]:
    ctx = push_context(snapshot_of(load_documents(yaml_text)), mesh or MeshConfig())
    proxy = Proxy.make("sidecar", "default", labels={"app": "reviews"}, ips=[ADDR], service_account="reviews",
                       interception_mode="NONE")
    return translate(ctx, dataclasses.replace(proxy, has_certificate=certificate))


def _listener(out: dict[str, list[Any]], port: int) -> Any:
    (lst,) = [x for x in out[LISTENER_TYPE] if x.name == f"{ADDR}_{port}"]
    return lst


def _chains(out: dict[str, list[Any]], port: int) -> list[tuple[str, bool]]:
    """(transport_protocol match, has a TLS socket) per filter chain of the inbound listener."""
    return [(fc.filter_chain_match.transport_protocol, fc.HasField("transport_socket"))
            for fc in _listener(out, port).filter_chains]


def _cluster(out: dict[str, list[Any]], name: str) -> Any:
    (c,) = [c for c in out[CLUSTER_TYPE] if c.name == name]
    return c


def _policy(mode: str, ports: str = "") -> str:
    return textwrap.dedent(f"""\
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {{name: reviews}}
        spec:
          selector: {{matchLabels: {{app: reviews}}}}
          mtls: {{mode: {mode}}}
        """) + ports


REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"


def test_default_is_permissive_mtls_and_plaintext_on_one_port() -> None:
    out = _translate(_mesh())
    assert _chains(out, 9080) == [("tls", True), ("raw_buffer", False)]
    names = [f.name for f in _listener(out, 9080).listener_filters]
    assert names == ["envoy.filters.listener.tls_inspector"]


def test_strict_is_mtls_only_with_client_certificate_and_trust_domain_check() -> None:
    out = _translate(_mesh(_policy("STRICT")))
    assert _chains(out, 9080) == [("tls", True)]
    assert _chains(out, 5432) == [("tls", True)]
    ctx = tls_pb2.DownstreamTlsContext()
    _listener(out, 9080).filter_chains[0].transport_socket.typed_config.Unpack(ctx)
    assert ctx.require_client_certificate.value
    common = ctx.common_tls_context
    assert [s.name for s in common.tls_certificate_sds_secret_configs] == ["default"]
    combined = common.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "ROOTCA"
    (san,) = combined.default_validation_context.match_typed_subject_alt_names
    assert san.matcher.prefix == "spiffe://cluster.local/"


def test_disable_and_port_level() -> None:
    out = _translate(_mesh(_policy("DISABLE")))
    assert _chains(out, 9080) == [("", False)] and not _listener(out, 9080).listener_filters
    ports = '  portLevelMtls: {"5432": {mode: STRICT}}\n'
    out = _translate(_mesh(_policy("DISABLE", ports)))
    assert _chains(out, 9080) == [("", False)]
    assert _chains(out, 5432) == [("tls", True)]


def test_app_gets_the_callers_spiffe_id_and_never_a_forged_one() -> None:
    out = _translate(_mesh())
    for chain in _listener(out, 9080).filter_chains:
        hcm = hcm_pb2.HttpConnectionManager()
        chain.filters[0].typed_config.Unpack(hcm)
        assert hcm.forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE_SET
        assert hcm.set_current_client_cert_details.uri


def test_auto_mtls_picks_by_endpoint_metadata() -> None:
    out = _translate(_mesh())
    cluster = _cluster(out, REVIEWS)
    assert not cluster.HasField("transport_socket")
    istio, plain = cluster.transport_socket_matches
    assert dict(istio.match.fields)["tlsMode"].string_value == "istio"
    assert plain.transport_socket.name == "envoy.transport_sockets.raw_buffer" and not plain.match.fields
    upstream = tls_pb2.UpstreamTlsContext()
    istio.transport_socket.typed_config.Unpack(upstream)
    assert upstream.sni == "outbound_.9080_._.reviews.default.svc.cluster.local"
    sans = upstream.common_tls_context.combined_validation_context.default_validation_context
    assert [s.matcher.exact for s in sans.match_typed_subject_alt_names] == ["spiffe://cluster.local/ns/default/sa/reviews"]
    (cla,) = [c for c in out[ENDPOINT_TYPE] if c.cluster_name == REVIEWS]
    (ep,) = cla.endpoints[0].lb_endpoints
    assert ep.metadata.filter_metadata["envoy.transport_socket_match"]["tlsMode"] == "istio"


def test_policy_disable_removes_the_endpoint_mark_and_namespace_disable_the_matches() -> None:
    out = _translate(_mesh(_policy("DISABLE")))
    (cla,) = [c for c in out[ENDPOINT_TYPE] if c.cluster_name == REVIEWS]
    assert not cla.endpoints[0].lb_endpoints[0].HasField("metadata")
    namespace_disable = "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n" \
                        "metadata: {name: default}\nspec: {mtls: {mode: DISABLE}}\n"
    out = _translate(_mesh(namespace_disable))
    assert not _cluster(out, REVIEWS).transport_socket_matches


def test_destination_rule_wins_over_auto_mtls() -> None:
    rule = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n" \
           "spec: {host: reviews, trafficPolicy: {tls: {mode: %s}}}\n"
    out = _translate(_mesh(rule % "ISTIO_MUTUAL"))
    cluster = _cluster(out, REVIEWS)
    assert cluster.transport_socket.name == "envoy.transport_sockets.tls" and not cluster.transport_socket_matches
    out = _translate(_mesh(rule % "DISABLE"))
    cluster = _cluster(out, REVIEWS)
    assert not cluster.HasField("transport_socket") and not cluster.transport_socket_matches


def test_auto_mtls_can_be_switched_off() -> None:
    out = _translate(_mesh(), mesh=MeshConfig(enable_auto_mtls=False))
    assert not _cluster(out, REVIEWS).transport_socket_matches


def test_a_proxy_without_certificate_gets_plaintext_but_strict_stays_closed() -> None:
    out = _translate(_mesh(), certificate=False)
    assert _chains(out, 9080) == [("", False)]
    assert not _cluster(out, REVIEWS).transport_socket_matches
    out = _translate(_mesh(_policy("STRICT")), certificate=False)
    assert _chains(out, 9080) == [("tls", True)]


def test_envoy_accepts_every_mode() -> None:
    for mode in ("STRICT", "PERMISSIVE", "DISABLE"):
        ok, text = envoy_validate(localized_bootstrap(_translate(_mesh(_policy(mode)))))
        assert ok, (mode, text)
