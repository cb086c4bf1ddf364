"""DestinationRule traffic policy -> cluster settings (lb, pools, outlier, hash policies).

Istio's precedence: a subset's policy overrides the rule's top-level policy field by
field (loadBalancer, connectionPool, outlierDetection, tls), and a portLevelSettings
entry for the cluster's port overrides the level it sits in. Hash policies are the
route's business; everything else goes on the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo

from controlplane.translate.pb import any_of, duration, u32

MAX_U32 = 4294967295
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The four policy parts that apply to one cluster after merging levels."""

    load_balancer: Any = None
    connection_pool: Any = None
    outlier_detection: Any = None
    tls: Any = None

    @property
    def locality_lb_enabled(self) -> bool:
        """Istio applies locality-aware priorities only when outlier detection is on."""
        if self.outlier_detection is None:
            return False
        setting = getattr(self.load_balancer, "locality_lb_setting", None)
        return getattr(setting, "enabled", None) is not False


_PARTS = ("load_balancer", "connection_pool", "outlier_detection", "tls")


def _overlay(base: EffectivePolicy, policy: Any, port: int) -> EffectivePolicy:
    if policy is None:
        return base
    values = {p: getattr(policy, p, None) or getattr(base, p) for p in _PARTS}
    for pls in getattr(policy, "port_level_settings", None) or ():
        sel = getattr(pls, "port", None)
        if sel is not None and getattr(sel, "number", 0) == port:
            for p in _PARTS:
                v = getattr(pls, p, None)
                if v is not None:
                    values[p] = v
    return EffectivePolicy(**values)


def effective_policy(rule: Any, port: int, subset: Any = None) -> EffectivePolicy:
    """Merge a DestinationRule's spec policy (and a subset's) for one port."""
    merged = EffectivePolicy()
    if rule is not None:
        merged = _overlay(merged, getattr(rule, "traffic_policy", None), port)
    if subset is not None:
        merged = _overlay(merged, getattr(subset, "traffic_policy", None), port)
    return merged


# --- load balancing ----------------------------------------------------------------------

_SIMPLE = {
    "ROUND_ROBIN": cluster_pb2.Cluster.ROUND_ROBIN,
    "LEAST_REQUEST": cluster_pb2.Cluster.LEAST_REQUEST,
    "LEAST_CONN": cluster_pb2.Cluster.LEAST_REQUEST,
    "RANDOM": cluster_pb2.Cluster.RANDOM,
}


def apply_load_balancer(cluster: cluster_pb2.Cluster, lb: Any) -> None:
    cluster.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST  # Istio's default since 1.14
    if lb is None:
        return
    simple = getattr(lb, "simple", None)
    chash = getattr(lb, "consistent_hash", None)
    if simple == "PASSTHROUGH":
        cluster.ClearField("eds_cluster_config")
        cluster.type = cluster_pb2.Cluster.ORIGINAL_DST
        cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    elif simple in _SIMPLE:
        cluster.lb_policy = _SIMPLE[simple]
    elif chash is not None:
        maglev = getattr(chash, "maglev", None)
        if maglev is not None:
            cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
            size = getattr(maglev, "table_size", 0) or 0
            if size:
                cluster.maglev_lb_config.table_size.value = size
        else:
            cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
            ring = getattr(chash, "ring_hash", None)
            size = getattr(ring, "minimum_ring_size", 0) or getattr(chash, "minimum_ring_size", 0) or 1024
            cluster.ring_hash_lb_config.minimum_ring_size.value = size
    setting = getattr(lb, "locality_lb_setting", None)
    if setting is not None and getattr(setting, "distribute", None):
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()


def hash_policies(lb: Any) -> list[rc.RouteAction.HashPolicy]:
    """consistentHash -> the route's hash policy (Envoy hashes on the route, not the cluster)."""
    chash = getattr(lb, "consistent_hash", None) if lb is not None else None
    if chash is None:
        return []
    hp = rc.RouteAction.HashPolicy()
    header = getattr(chash, "http_header_name", None)
    cookie = getattr(chash, "http_cookie", None)
    query = getattr(chash, "http_query_parameter_name", None)
    if header:
        hp.header.header_name = header
    elif cookie is not None:
        hp.cookie.name = cookie.name
        if getattr(cookie, "path", None):
            hp.cookie.path = cookie.path
        ttl = getattr(cookie, "ttl", None)
        if ttl is not None:
            hp.cookie.ttl.CopyFrom(duration(ttl))
    elif getattr(chash, "use_source_ip", False):
        hp.connection_properties.source_ip = True
    elif query:
        hp.query_parameter.name = query
    else:
        return []
    return [hp]


# --- connection pool -----------------------------------------------------------------------


def default_circuit_breakers() -> circuit_breaker_pb2.CircuitBreakers:
    t = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=u32(MAX_U32),
        max_pending_requests=u32(MAX_U32),
        max_requests=u32(MAX_U32),
        max_retries=u32(MAX_U32),
        track_remaining=True,
    )
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[t])


def apply_connection_pool(
    cluster: cluster_pb2.Cluster, pool: Any, http2: bool, http_port: bool
) -> None:
    """Circuit breakers, connect timeout, keepalive and upstream HTTP protocol options."""
    cluster.circuit_breakers.CopyFrom(default_circuit_breakers())
    th = cluster.circuit_breakers.thresholds[0]
    tcp = getattr(pool, "tcp", None) if pool is not None else None
    http = getattr(pool, "http", None) if pool is not None else None
    options = hpo.HttpProtocolOptions()
    if tcp is not None:
        if getattr(tcp, "max_connections", 0):
            th.max_connections.value = tcp.max_connections
        if getattr(tcp, "connect_timeout", None) is not None:
            cluster.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
        ka = getattr(tcp, "tcp_keepalive", None)
        if ka is not None:
            keep = cluster.upstream_connection_options.tcp_keepalive
            keep.SetInParent()
            if getattr(ka, "probes", 0):
                keep.keepalive_probes.value = ka.probes
            if getattr(ka, "time", None) is not None:
                keep.keepalive_time.value = max(1, int(ka.time.total_seconds()))
            if getattr(ka, "interval", None) is not None:
                keep.keepalive_interval.value = max(1, int(ka.interval.total_seconds()))
        if getattr(tcp, "max_connection_duration", None) is not None:
            options.common_http_protocol_options.max_connection_duration.CopyFrom(
                duration(tcp.max_connection_duration)
            )
    upgrade = False
    if http is not None:
        if getattr(http, "http1_max_pending_requests", 0):
            th.max_pending_requests.value = http.http1_max_pending_requests
        if getattr(http, "http2_max_requests", 0):
            th.max_requests.value = http.http2_max_requests
        if getattr(http, "max_retries", 0):
            th.max_retries.value = http.max_retries
        if getattr(http, "max_requests_per_connection", 0):
            options.common_http_protocol_options.max_requests_per_connection.value = (
                http.max_requests_per_connection
            )
        if getattr(http, "idle_timeout", None) is not None:
            options.common_http_protocol_options.idle_timeout.CopyFrom(duration(http.idle_timeout))
        upgrade = getattr(http, "h2_upgrade_policy", None) == "UPGRADE"
    if not http_port:
        return
    if http is not None and getattr(http, "use_client_protocol", False):
        # Keep the downstream's protocol (HTTP/1.1 stays HTTP/1.1, h2 stays h2).
        options.use_downstream_protocol_config.http_protocol_options.SetInParent()
        options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    elif http2 or upgrade:
        options.explicit_http_config.http2_protocol_options.SetInParent()
        streams = getattr(http, "max_concurrent_streams", 0) if http is not None else 0
        if streams:
            options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value = streams
    else:
        options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(any_of(options))


# --- outlier detection ---------------------------------------------------------------------


def apply_outlier_detection(cluster: cluster_pb2.Cluster, od: Any) -> None:
    if od is None:
        return
    out = outlier_detection_pb2.OutlierDetection()
    five = getattr(od, "consecutive_5xx_errors", None)
    legacy = getattr(od, "consecutive_errors", None)
    if five is None and legacy:
        five = legacy
    if five is not None:
        out.consecutive_5xx.value = five
        out.enforcing_consecutive_5xx.value = 100 if five > 0 else 0
    gw = getattr(od, "consecutive_gateway_errors", None)
    if gw is not None:
        out.consecutive_gateway_failure.value = gw
        out.enforcing_consecutive_gateway_failure.value = 100 if gw > 0 else 0
    if getattr(od, "interval", None) is not None:
        out.interval.CopyFrom(duration(od.interval))
    if getattr(od, "base_ejection_time", None) is not None:
        out.base_ejection_time.CopyFrom(duration(od.base_ejection_time))
    if getattr(od, "max_ejection_percent", 0):
        out.max_ejection_percent.value = od.max_ejection_percent
    if getattr(od, "split_external_local_origin_errors", False):
        out.split_external_local_origin_errors = True
        local = getattr(od, "consecutive_local_origin_failures", None)
        if local is not None:
            out.consecutive_local_origin_failure.value = local
    out.enforcing_success_rate.value = 0
    cluster.outlier_detection.CopyFrom(out)
    # As Istio: minHealthPercent (default 0) is the panic threshold, so by default an
    # ejected host is never used again "in panic" while others remain.
    cluster.common_lb_config.healthy_panic_threshold.value = float(
        getattr(od, "min_health_percent", 0) or 0
    )

