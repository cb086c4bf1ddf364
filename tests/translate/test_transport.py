"""The transport-security seam: upstream TLS per DestinationRule mode and auto-mTLS."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from controlplane.model.destination_rule import ClientTLSSettings
from controlplane.model.mesh import MeshConfig
from controlplane.translate.transport import apply_upstream_tls, upstream_transport_socket

HOST = "reviews.default.svc.cluster.local"


def _ctx(socket) -> tls_pb2.UpstreamTlsContext:
    ctx = tls_pb2.UpstreamTlsContext()
    socket.typed_config.Unpack(ctx)
    return ctx


def test_no_tls_unless_auto_mtls_and_peer_has_sidecar() -> None:
    assert upstream_transport_socket(None, HOST, 9080, "", MeshConfig()) is None
    auto = MeshConfig(enable_auto_mtls=True)
    plain = cluster_pb2.Cluster(name="outbound|9080|v1|" + HOST)
    apply_upstream_tls(plain, None, HOST, 9080, "v1", auto, auto_mtls=False)
    assert not plain.HasField("transport_socket") and not plain.transport_socket_matches
    cluster = cluster_pb2.Cluster(name="outbound|9080|v1|" + HOST)
    apply_upstream_tls(
        cluster, None, HOST, 9080, "v1", auto, auto_mtls=True,
        service_accounts=("spiffe://cluster.local/ns/default/sa/reviews",),
    )
    # Endpoints with a sidecar (tlsMode: istio) get mTLS; the others plaintext.
    istio, plaintext = cluster.transport_socket_matches
    assert istio.match.fields["tlsMode"].string_value == "istio"
    assert plaintext.transport_socket.name == "envoy.transport_sockets.raw_buffer"
    ctx = _ctx(istio.transport_socket)
    assert ctx.sni == "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
    assert ctx.common_tls_context.tls_certificate_sds_secret_configs[0].name == "default"
    combined = ctx.common_tls_context.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "ROOTCA"
    assert combined.default_validation_context.match_typed_subject_alt_names[0].matcher.exact.endswith("/sa/reviews")


def test_disable_simple_mutual() -> None:
    mesh = MeshConfig(enable_auto_mtls=True)
    assert upstream_transport_socket(ClientTLSSettings(mode="DISABLE"), HOST, 80, "", mesh) is None
    simple = _ctx(upstream_transport_socket(ClientTLSSettings(mode="SIMPLE", ca_certificates="/ca.pem"), "api.example.com", 443, "", mesh))
    assert simple.sni == "api.example.com"
    assert simple.common_tls_context.validation_context.trusted_ca.filename == "/ca.pem"
    mutual = _ctx(upstream_transport_socket(ClientTLSSettings(
        mode="MUTUAL", client_certificate="/c.pem", private_key="/k.pem", credential_name=""), "x.example", 443, "", mesh))
    assert mutual.common_tls_context.tls_certificates[0].certificate_chain.filename == "/c.pem"
    cred = _ctx(upstream_transport_socket(ClientTLSSettings(mode="MUTUAL", credential_name="client-cred"), "x.example", 443, "", mesh))
    assert cred.common_tls_context.tls_certificate_sds_secret_configs[0].name == "client-cred"
    assert cred.common_tls_context.validation_context_sds_secret_config.name == "client-cred-cacert"


def test_tls_naming_no_ca_is_verified_against_the_system_bundle_when_the_server_has_one() -> None:
    """Istio's VERIFY_CERTIFICATE_AT_CLIENT: SIMPLE TLS without caCertificates or credentialName."""
    simple = ClientTLSSettings(mode="SIMPLE", sni="api.example.com")
    with_bundle = MeshConfig(system_ca_bundle=b"-----BEGIN CERTIFICATE-----\n...")
    ctx = _ctx(upstream_transport_socket(simple, HOST, 443, "", with_bundle))
    assert ctx.common_tls_context.validation_context_sds_secret_config.name == "file-root:system"
    sans = ClientTLSSettings(mode="SIMPLE", subject_alt_names=("api.example.com",))
    combined = _ctx(upstream_transport_socket(sans, HOST, 443, "", with_bundle)).common_tls_context.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "file-root:system"
    assert combined.default_validation_context.match_typed_subject_alt_names[0].matcher.exact == "api.example.com"
    skip = ClientTLSSettings(mode="SIMPLE", insecure_skip_verify=True)
    for tls, mesh in ((skip, with_bundle), (simple, MeshConfig())):  # skipped, or no bundle found
        common = _ctx(upstream_transport_socket(tls, HOST, 443, "", mesh)).common_tls_context
        assert not common.HasField("validation_context_sds_secret_config")
        assert not common.HasField("combined_validation_context") and not common.HasField("validation_context")
