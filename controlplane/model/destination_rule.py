"""networking.istio.io DestinationRule: policies for traffic to a host after routing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.common import PortSelector, WorkloadSelector
from controlplane.model.decode import jfield
from controlplane.model.frozen import EMPTY

SimpleLB = Literal[
    "UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"
]
ClientTLSMode = Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]
H2UpgradePolicy = Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]


@dataclass(frozen=True, slots=True)
class CookieAttribute:
    name: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class HTTPCookie:
    name: str = ""
    path: str = ""
    ttl: timedelta | None = None
    attributes: tuple[CookieAttribute, ...] = ()


@dataclass(frozen=True, slots=True)
class RingHash:
    minimum_ring_size: int = 0


@dataclass(frozen=True, slots=True)
class MagLev:
    table_size: int = 0


@dataclass(frozen=True, slots=True)
class ConsistentHashLB:
    """Exactly one hash key (header, cookie, source IP, query parameter) is set."""

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: int | None = None  # deprecated, use ring_hash


@dataclass(frozen=True, slots=True)
class LocalityDistribute:
    from_: str = jfield("from", default="")
    to: Mapping[str, int] = field(default=EMPTY)


@dataclass(frozen=True, slots=True)
class LocalityFailover:
    from_: str = jfield("from", default="")
    to: str = ""


@dataclass(frozen=True, slots=True)
class LocalityLoadBalancerSetting:
    distribute: tuple[LocalityDistribute, ...] = ()
    failover: tuple[LocalityFailover, ...] = ()
    failover_priority: tuple[str, ...] = ()
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class WarmupConfiguration:
    duration: timedelta | None = None
    minimum_percent: float | None = None  # Istio default 10
    aggression: float | None = None  # Istio default 1.0


@dataclass(frozen=True, slots=True)
class LoadBalancerSettings:
    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    warmup_duration_secs: timedelta | None = None  # deprecated, use warmup
    warmup: WarmupConfiguration | None = None


@dataclass(frozen=True, slots=True)
class TcpKeepalive:
    probes: int = 0
    time: timedelta | None = None
    interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class TCPSettings:
    max_connections: int = 0
    connect_timeout: timedelta | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: timedelta | None = None
    idle_timeout: timedelta | None = None


@dataclass(frozen=True, slots=True)
class HTTP2KeepAlive:
    interval: timedelta | None = None
    timeout: timedelta | None = None


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    http1_max_pending_requests: int = 0
    http2_max_requests: int = 0
    max_requests_per_connection: int = 0
    max_retries: int = 0
    idle_timeout: timedelta | None = None
    h2_upgrade_policy: H2UpgradePolicy = "DEFAULT"
    use_client_protocol: bool = False
    max_concurrent_streams: int = 0
    http2_keep_alive: HTTP2KeepAlive | None = None


@dataclass(frozen=True, slots=True)
class ConnectionPoolSettings:
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failures: int | None = None
    consecutive_gateway_errors: int | None = None
    consecutive_5xx_errors: int | None = jfield("consecutive5xxErrors", default=None)
    consecutive_errors: int | None = None  # deprecated
    interval: timedelta | None = None
    base_ejection_time: timedelta | None = None
    max_ejection_percent: int = 0
    min_health_percent: int = 0


@dataclass(frozen=True, slots=True)
class ClientTLSSettings:
    mode: ClientTLSMode = "DISABLE"
    client_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    credential_name: str = ""
    subject_alt_names: tuple[str, ...] = ()
    sni: str = ""
    insecure_skip_verify: bool | None = None
    ca_crl: str = ""


@dataclass(frozen=True, slots=True)
class TunnelSettings:
    protocol: str = "CONNECT"
    target_host: str = ""
    target_port: int = 0


@dataclass(frozen=True, slots=True)
class ProxyProtocol:
    version: Literal["V1", "V2"] = "V1"


@dataclass(frozen=True, slots=True)
class RetryBudget:
    percent: float | None = None
    min_retry_concurrency: int = 0
    budget_interval: timedelta | None = None  # accepted; Envoy's budget has no interval


@dataclass(frozen=True, slots=True)
class PortTrafficPolicy:
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None


@dataclass(frozen=True, slots=True)
class Subset:
    name: str = ""
    labels: Mapping[str, str] = field(default=EMPTY)
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True, slots=True)
class DestinationRuleSpec:
    host: str = ""
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    workload_selector: WorkloadSelector | None = None  # istio.type.v1beta1: matchLabels


@dataclass(frozen=True, slots=True)
class DestinationRule(Resource):
    KIND: ClassVar[str] = "DestinationRule"
    meta: ObjectMeta
    spec: DestinationRuleSpec
