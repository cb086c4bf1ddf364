"""Transport security decisions: the upstream TLS of a cluster, the inbound TLS of a port.

ISTIO_MUTUAL and auto mTLS use the SDS secrets ``default`` (workload certificate) and
``ROOTCA`` (trust bundle) that the runtime pushes to each proxy that proved its identity.
Auto mTLS is Istio's: a cluster without DestinationRule TLS gets two transport socket
matches, mTLS for endpoints whose metadata says ``tlsMode: istio`` (they run a sidecar) and
plaintext for the rest. PeerAuthentication (peer_authentication.py) decides the inbound
mode: STRICT (mTLS only), PERMISSIVE (mTLS and plaintext on one port, told apart by
tls_inspector) or DISABLE (plaintext only).
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.core.v3 import proxy_protocol_pb2 as proxy_protocol_config_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.proxy_protocol.v3 import (
    upstream_proxy_protocol_pb2 as proxy_protocol_pb2,
)
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import struct_pb2, wrappers_pb2

from controlplane.model.destination_rule import ClientTLSSettings, ProxyProtocol
from controlplane.model.mesh import MeshConfig
from controlplane.translate.credentials import CA_SUFFIX, verifies_with_system_ca
from controlplane.translate.index.registry import TLS_MODE_ISTIO
from controlplane.translate.names import mtls_sni
from controlplane.translate.pb import ads_source, any_of
from controlplane.translate.secrets import SYSTEM_CA_SECRET

TLS_SOCKET = "envoy.transport_sockets.tls"
RAW_BUFFER_SOCKET = "envoy.transport_sockets.raw_buffer"
PROXY_PROTOCOL_SOCKET = "envoy.transport_sockets.upstream_proxy_protocol"
WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"
ISTIO_ALPN = ("istio-peer-exchange", "istio")
HTTP_ALPN = ("h2", "http/1.1")
# Endpoint metadata that picks a cluster's transport socket match (Istio's EDS sets it).
TRANSPORT_SOCKET_MATCH_FILTER = "envoy.transport_socket_match"
TLS_MODE_KEY = "tlsMode"
# Filter chain transport_protocol values set by tls_inspector.
TLS_TRANSPORT = "tls"
RAW_TRANSPORT = "raw_buffer"

# Inbound modes, as PeerAuthentication's mtls.mode.
DISABLE = "DISABLE"
PERMISSIVE = "PERMISSIVE"
STRICT = "STRICT"


def sds_config(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_source())


def tls_socket(context: tls_pb2.UpstreamTlsContext | tls_pb2.DownstreamTlsContext) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=any_of(context))


def exact_sans(names: tuple[str, ...] | list[str]) -> list[common_pb2.SubjectAltNameMatcher]:
    return [
        common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.URI if n.startswith("spiffe://") else common_pb2.SubjectAltNameMatcher.DNS,
            matcher=string_pb2.StringMatcher(exact=n),
        )
        for n in names
    ]


def trust_domain_san(trust_domain: str) -> common_pb2.SubjectAltNameMatcher:
    """Any SPIFFE ID of the trust domain: ``spiffe://<trust domain>/`` as a URI SAN prefix."""
    return common_pb2.SubjectAltNameMatcher(
        san_type=common_pb2.SubjectAltNameMatcher.URI,
        matcher=string_pb2.StringMatcher(prefix=f"spiffe://{trust_domain}/"),
    )


def _mesh_validation(common: common_pb2.CommonTlsContext, sans: list[common_pb2.SubjectAltNameMatcher]) -> None:
    """Peers are checked against ROOTCA (every trusted root, from SDS) and these SANs."""
    combined = common.combined_validation_context
    combined.validation_context_sds_secret_config.CopyFrom(sds_config(ROOT_SECRET))
    combined.default_validation_context.match_typed_subject_alt_names.extend(sans)


def istio_mutual_context(sni: str, sans: tuple[str, ...] = (), trust_domain: str = "") -> tls_pb2.UpstreamTlsContext:
    """Our SVID to the server; the server's SPIFFE ID must be one of ``sans`` (the
    destination's service accounts) or, when none are known, of ``trust_domain``."""
    ctx = tls_pb2.UpstreamTlsContext(sni=sni)
    common = ctx.common_tls_context
    common.tls_certificate_sds_secret_configs.append(sds_config(WORKLOAD_SECRET))
    matchers = exact_sans(sans) if sans else ([trust_domain_san(trust_domain)] if trust_domain else [])
    _mesh_validation(common, matchers)
    common.alpn_protocols.extend(ISTIO_ALPN)
    return ctx


def upstream_transport_socket(
    tls: ClientTLSSettings | None,
    host: str,
    port: int,
    subset: str,
    mesh: MeshConfig,
    *,
    service_accounts: tuple[str, ...] = (),
) -> base_pb2.TransportSocket | None:
    """The transport socket a DestinationRule's TLS settings give ``outbound|port|subset|host``
    (None for none or DISABLE). ``service_accounts`` are the SPIFFE IDs ISTIO_MUTUAL verifies;
    auto mTLS without settings is apply_upstream_tls's."""
    if tls is None or tls.mode == "DISABLE":
        return None
    mode = tls.mode
    if mode == "ISTIO_MUTUAL":
        sni = tls.sni or mtls_sni(host, port, subset)
        sans = tuple(tls.subject_alt_names) or service_accounts
        return tls_socket(istio_mutual_context(sni, sans, mesh.trust_domain))
    ctx = tls_pb2.UpstreamTlsContext(sni=tls.sni or host)
    common = ctx.common_tls_context
    if tls.credential_name:
        _sds_validation(common, tls.credential_name + CA_SUFFIX, tls.subject_alt_names)
        if mode == "MUTUAL":
            common.tls_certificate_sds_secret_configs.append(sds_config(tls.credential_name))
    else:
        if tls.ca_certificates and not tls.insecure_skip_verify:
            vc = common.validation_context
            vc.trusted_ca.filename = tls.ca_certificates
            vc.match_typed_subject_alt_names.extend(exact_sans(tls.subject_alt_names))
        elif mesh.system_ca_bundle and verifies_with_system_ca(tls):
            _sds_validation(common, SYSTEM_CA_SECRET, tls.subject_alt_names)
        if mode == "MUTUAL" and tls.client_certificate:
            cert = common_pb2.TlsCertificate()
            cert.certificate_chain.filename = tls.client_certificate
            cert.private_key.filename = tls.private_key
            common.tls_certificates.append(cert)
    return tls_socket(ctx)


def _sds_validation(common: common_pb2.CommonTlsContext, secret: str, sans: tuple[str, ...]) -> None:
    """The server is checked against the CA of SDS ``secret`` (and ``sans``, when given, in
    Istio's combined context)."""
    if sans:
        combined = common.combined_validation_context
        combined.validation_context_sds_secret_config.CopyFrom(sds_config(secret))
        combined.default_validation_context.match_typed_subject_alt_names.extend(exact_sans(sans))
    else:
        common.validation_context_sds_secret_config.CopyFrom(sds_config(secret))


def apply_upstream_tls(
    cluster: cluster_pb2.Cluster,
    tls: ClientTLSSettings | None,
    host: str,
    port: int,
    subset: str,
    mesh: MeshConfig,
    *,
    service_accounts: tuple[str, ...] = (),
    auto_mtls: bool = False,
) -> None:
    """Set the transport security of ``outbound|port|subset|host``.

    DestinationRule TLS settings win (one transport socket for every endpoint). Without
    them and with ``auto_mtls`` (mesh setting on, the proxy holds a certificate, the service
    is inside the mesh and not DISABLEd by policy), Istio's two matches: mTLS for endpoints
    marked ``tlsMode: istio``, plaintext for the others. Original-destination clusters
    (headless services) are left alone, as Istio does.
    """
    if tls is not None:
        socket = upstream_transport_socket(tls, host, port, subset, mesh, service_accounts=service_accounts)
        if socket is not None:
            cluster.transport_socket.CopyFrom(socket)
        return
    if not auto_mtls or cluster.type == cluster_pb2.Cluster.ORIGINAL_DST:
        return
    mtls = tls_socket(istio_mutual_context(mtls_sni(host, port, subset), service_accounts, mesh.trust_domain))
    istio = cluster.transport_socket_matches.add(name=f"{TLS_MODE_KEY}-{TLS_MODE_ISTIO}", transport_socket=mtls)
    istio.match.fields[TLS_MODE_KEY].string_value = TLS_MODE_ISTIO
    plain = cluster.transport_socket_matches.add(name=f"{TLS_MODE_KEY}-disabled")
    plain.match.SetInParent()
    plain.transport_socket.CopyFrom(raw_buffer_socket())


def apply_upstream_proxy_protocol(cluster: cluster_pb2.Cluster, proxy_protocol: ProxyProtocol | None) -> None:
    """Istio's applyUpstreamProxyProtocol: a PROXY protocol header (V1 or V2) before what the
    cluster's transport socket (or each matched one, or plain TCP) sends."""
    if proxy_protocol is None:
        return
    sockets = [m.transport_socket for m in cluster.transport_socket_matches]
    if cluster.HasField("transport_socket") or not sockets:
        sockets.append(cluster.transport_socket)
    for socket in sockets:
        inner = base_pb2.TransportSocket()
        inner.CopyFrom(socket if socket.name else raw_buffer_socket())
        wrapper = proxy_protocol_pb2.ProxyProtocolUpstreamTransport(transport_socket=inner)
        wrapper.config.version = proxy_protocol_config_pb2.ProxyProtocolConfig.Version.Value(proxy_protocol.version)
        socket.CopyFrom(base_pb2.TransportSocket(name=PROXY_PROTOCOL_SOCKET, typed_config=any_of(wrapper)))


def raw_buffer_socket() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=RAW_BUFFER_SOCKET, typed_config=any_of(raw_buffer_pb2.RawBuffer()))


def mark_istio_endpoint(metadata: base_pb2.Metadata) -> None:
    """Endpoint metadata ``envoy.transport_socket_match: {tlsMode: istio}``."""
    fields = struct_pb2.Struct()
    fields.fields[TLS_MODE_KEY].string_value = TLS_MODE_ISTIO
    metadata.filter_metadata[TRANSPORT_SOCKET_MATCH_FILTER].CopyFrom(fields)


def inbound_transport_socket(
    mode: str, *, trust_domain: str = "cluster.local", http: bool = True
) -> base_pb2.TransportSocket | None:
    """The DownstreamTlsContext of an mTLS inbound chain (None for DISABLE): our SVID from
    SDS ``default``, a client certificate required, chaining to ``ROOTCA`` and naming a
    SPIFFE ID of the trust domain."""
    if mode == DISABLE:
        return None
    ctx = tls_pb2.DownstreamTlsContext(require_client_certificate=wrappers_pb2.BoolValue(value=True))
    common = ctx.common_tls_context
    common.tls_certificate_sds_secret_configs.append(sds_config(WORKLOAD_SECRET))
    _mesh_validation(common, [trust_domain_san(trust_domain)])
    common.alpn_protocols.extend(HTTP_ALPN if http else ISTIO_ALPN)
    return tls_socket(ctx)


def forward_client_cert(hcm_filter: lc.Filter) -> lc.Filter:
    """The app behind an inbound sidecar learns who called: ``x-forwarded-client-cert`` with
    the peer's SPIFFE ID (``URI=...``), set by Envoy and never taken from the caller."""
    hcm = hcm_pb2.HttpConnectionManager()
    hcm_filter.typed_config.Unpack(hcm)
    hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
    hcm.set_current_client_cert_details.uri = True
    return lc.Filter(name=hcm_filter.name, typed_config=any_of(hcm))
