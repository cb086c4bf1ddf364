"""Render a complete Envoy v3 bootstrap for a sidecar or a router (gateway), as plain data.

Pure functions, no I/O (the CLI writes the file:
`controlplane.cli.bootstrap.write_bootstrap`). The node follows Istio's conventions so users
recognise it (`sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`, metadata NAMESPACE,
SERVICE_ACCOUNT, LABELS, INSTANCE_IPS, WORKLOAD_NAME). xDS comes from the `xds-grpc` static
cluster over ADS (state of the world, or delta with `delta=True`); TLS towards the control plane
and a credential sent as gRPC initial metadata are optional parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.model.checks import is_ip
from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX
from controlplane.model.locality import Locality
from controlplane.model.node import node_id as _node_id
from controlplane.translate.stats_tags import stats_config

XDS_CLUSTER = "xds-grpc"
_TLS_SOCKET = "envoy.transport_sockets.tls"
_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_HCM = "envoy.filters.network.http_connection_manager"
_HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
_ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP2_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def node_id(
    ip: str,
    pod: str,
    namespace: str,
    *,
    kind: str = "sidecar",
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
) -> str:
    """Istio's node id: `sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local`
    (``domain_suffix`` is Istio's domainSuffix, ``cluster.local``: ``.svc.`` is inserted)."""
    return _node_id(kind, ip, pod, namespace, domain_suffix)


@dataclass(frozen=True)
class BootstrapParams:
    # Who the proxy is (what it claims: identity is proven by the credential).
    ip: str
    pod: str
    namespace: str
    service_account: str = "default"
    workload_name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    instance_ips: Sequence[str] = ()
    kind: str = "sidecar"  # or "router" for gateways
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX  # Istio's domainSuffix: <name>.<ns>.svc.<this>
    cluster: str = ""  # node.cluster; defaults to "<workload>.<namespace>"
    # Where the control plane is.
    xds_host: str = "127.0.0.1"
    xds_port: int = 15010
    # Or a Unix socket (an agent beside Envoy proxies xDS there and holds the credential).
    xds_unix_socket: str | None = None
    delta: bool = False
    # TLS to the control plane (port 15012): the root that signs its certificate, the name to
    # verify, and optionally a client certificate.
    xds_tls_root_pem: str | None = None
    xds_tls_server_name: str = "istiod.istio-system.svc"
    xds_tls_cert_chain_pem: str | None = None
    xds_tls_private_key_pem: str | None = None
    # A credential (e.g. a token) sent on the xDS stream as `authorization: Bearer <token>`.
    credential_token: str | None = None
    credential_header: str = "authorization"
    # Admin, and the Istio-style stats (15090) and health (15021) listeners when given.
    admin_host: str = "127.0.0.1"
    admin_port: int = 15000
    stats_port: int | None = None
    health_port: int | None = None
    listen_host: str = "127.0.0.1"  # where stats/health listeners bind
    extra_metadata: Mapping[str, Any] = field(default_factory=dict)
    # node.locality, as pilot-agent writes it: where the proxy runs, for locality-aware balancing.
    locality: Locality | None = None

    @property
    def node_id(self) -> str:
        return node_id(
            self.ip, self.pod, self.namespace, kind=self.kind, domain_suffix=self.domain_suffix
        )


def _socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _node(p: BootstrapParams) -> dict[str, Any]:
    workload = p.workload_name or p.pod
    metadata: dict[str, Any] = {
        "NAMESPACE": p.namespace,
        "SERVICE_ACCOUNT": p.service_account,
        "LABELS": dict(sorted(p.labels.items())),
        "INSTANCE_IPS": ",".join(p.instance_ips or (p.ip,)),
        "WORKLOAD_NAME": workload,
        "NAME": p.pod,
        # As Istio's proxy config: where operators (dashboard, syncz) reach this Envoy's admin.
        # proxyAdminHost (ours): where it binds, for local meshes where each workload has its
        # own loopback address; Istio binds admin to localhost.
        "PROXY_CONFIG": {"proxyAdminPort": p.admin_port, "proxyAdminHost": p.admin_host},
    }
    metadata.update(p.extra_metadata)
    node: dict[str, Any] = {
        "id": p.node_id,
        "cluster": p.cluster or f"{workload}.{p.namespace}",
        "metadata": metadata,
    }
    loc = p.locality or Locality()
    parts = {"region": loc.region, "zone": loc.zone, "sub_zone": loc.subzone}
    if any(parts.values()):
        node["locality"] = {k: v for k, v in parts.items() if v}
    return node


def _grpc_service(p: BootstrapParams) -> dict[str, Any]:
    service: dict[str, Any] = {"envoy_grpc": {"cluster_name": XDS_CLUSTER}}
    if p.credential_token:
        service["initial_metadata"] = [
            {"key": p.credential_header, "value": f"Bearer {p.credential_token}"}
        ]
    return service


def _xds_cluster(p: BootstrapParams) -> dict[str, Any]:
    address = (
        {"pipe": {"path": p.xds_unix_socket}}
        if p.xds_unix_socket
        else _socket_address(p.xds_host, p.xds_port)
    )
    cluster: dict[str, Any] = {
        "name": XDS_CLUSTER,
        "type": "STATIC" if p.xds_unix_socket or is_ip(p.xds_host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP2_OPTIONS_TYPE,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "10s"}
                    }
                },
            }
        },
    }
    if p.xds_tls_root_pem is not None:
        common: dict[str, Any] = {
            "alpn_protocols": ["h2"],
            "validation_context": {
                "trusted_ca": {"inline_string": p.xds_tls_root_pem},
                # Only the control plane's own certificate: a workload SVID from the same CA
                # (URI SAN only) must not be able to pose as the control plane.
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": p.xds_tls_server_name}}
                ],
            },
        }
        if p.xds_tls_cert_chain_pem and p.xds_tls_private_key_pem:
            common["tls_certificates"] = [
                {
                    "certificate_chain": {"inline_string": p.xds_tls_cert_chain_pem},
                    "private_key": {"inline_string": p.xds_tls_private_key_pem},
                }
            ]
        cluster["transport_socket"] = {
            "name": _TLS_SOCKET,
            "typed_config": {
                "@type": _TLS_TYPE,
                "sni": p.xds_tls_server_name,
                "common_tls_context": common,
            },
        }
    return cluster


def _admin_cluster(p: BootstrapParams) -> dict[str, Any]:
    return {
        "name": "prometheus_stats",
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": {
            "cluster_name": "prometheus_stats",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address(p.admin_host, p.admin_port)}}
                    ]
                }
            ],
        },
    }


def _admin_proxy_listener(
    name: str, host: str, port: int, path: str, rewrite: str
) -> dict[str, Any]:
    """A listener that exposes one admin path (as Istio's 15090 stats and 15021 health do)."""
    return {
        "name": name,
        "address": _socket_address(host, port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": _HCM,
                        "typed_config": {
                            "@type": _HCM_TYPE,
                            "stat_prefix": name,
                            "codec_type": "AUTO",
                            "route_config": {
                                "virtual_hosts": [
                                    {
                                        "name": name,
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"path": path},
                                                "route": {
                                                    "cluster": "prometheus_stats",
                                                    "prefix_rewrite": rewrite,
                                                },
                                            }
                                        ],
                                    }
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": _ROUTER_TYPE},
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }


def render_bootstrap(p: BootstrapParams) -> dict[str, Any]:
    """The complete bootstrap as a dict (YAML/JSON-ready)."""
    api_type = "DELTA_GRPC" if p.delta else "GRPC"
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    clusters = [_xds_cluster(p)]
    listeners = []
    if p.stats_port is not None or p.health_port is not None:
        clusters.append(_admin_cluster(p))
    if p.stats_port is not None:
        listeners.append(
            _admin_proxy_listener(
                "envoy_prometheus",
                p.listen_host,
                p.stats_port,
                "/stats/prometheus",
                "/stats/prometheus",
            )
        )
    if p.health_port is not None:
        listeners.append(
            _admin_proxy_listener(
                "envoy_health", p.listen_host, p.health_port, "/healthz/ready", "/ready"
            )
        )
    static: dict[str, Any] = {"clusters": clusters}
    if listeners:
        static["listeners"] = listeners
    return {
        "node": _node(p),
        # Istio's stat tags plus destination/workload labels (see controlplane/stats_tags.py).
        "stats_config": stats_config(
            workload=p.workload_name or p.pod, namespace=p.namespace, labels=p.labels,
            domain_suffix=p.domain_suffix,
        ),
        "admin": {"address": _socket_address(p.admin_host, p.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": api_type,
                "transport_api_version": "V3",
                "grpc_services": [_grpc_service(p)],
                "set_node_on_first_message_only": True,
            },
            "lds_config": ads_source,
            "cds_config": ads_source,
        },
        "static_resources": static,
        "layered_runtime": {
            "layers": [
                {
                    "name": "global",
                    "static_layer": {"overload": {"global_downstream_max_connections": 100000}},
                }
            ]
        },
    }
