"""DestinationRule traffic policy -> cluster settings (lb, pools, outlier, hash policies).

Istio's precedence: a subset's policy overrides the rule's top-level policy field by
field (loadBalancer, connectionPool, outlierDetection, tls), and a portLevelSettings
entry for the cluster's port overrides the level it sits in. Hash policies are the
route's business; everything else goes on the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo

from controlplane.model.destination_rule import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    DestinationRuleSpec,
    LoadBalancerSettings,
    OutlierDetection,
    ProxyProtocol,
    RetryBudget,
    Subset,
    TrafficPolicy,
)
from controlplane.translate.pb import any_of, duration, u32

MAX_U32 = 4294967295
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The policy parts that apply to one cluster after merging levels (a retry budget and the
    PROXY protocol have no port level)."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    retry_budget: RetryBudget | None = None
    proxy_protocol: ProxyProtocol | None = None

    @property
    def locality_lb_enabled(self) -> bool:
        """Istio applies locality-aware priorities only when outlier detection is on."""
        if self.outlier_detection is None:
            return False
        setting = self.load_balancer.locality_lb_setting if self.load_balancer is not None else None
        return setting is None or setting.enabled is not False


def _overlay(base: EffectivePolicy, policy: TrafficPolicy | None, port: int) -> EffectivePolicy:
    if policy is None:
        return base
    merged = EffectivePolicy(
        load_balancer=policy.load_balancer or base.load_balancer,
        connection_pool=policy.connection_pool or base.connection_pool,
        outlier_detection=policy.outlier_detection or base.outlier_detection,
        tls=policy.tls or base.tls,
        retry_budget=policy.retry_budget or base.retry_budget,
        proxy_protocol=policy.proxy_protocol or base.proxy_protocol,
    )
    for pls in policy.port_level_settings:
        if pls.port is not None and pls.port.number == port:
            merged = replace(
                merged,
                load_balancer=pls.load_balancer or merged.load_balancer,
                connection_pool=pls.connection_pool or merged.connection_pool,
                outlier_detection=pls.outlier_detection or merged.outlier_detection,
                tls=pls.tls or merged.tls,
            )
    return merged


def effective_policy(rule: DestinationRuleSpec | None, port: int, subset: Subset | None = None) -> EffectivePolicy:
    """Merge a DestinationRule's spec policy (and a subset's) for one port."""
    merged = EffectivePolicy()
    if rule is not None:
        merged = _overlay(merged, rule.traffic_policy, port)
    if subset is not None:
        merged = _overlay(merged, subset.traffic_policy, port)
    return merged


# --- load balancing ----------------------------------------------------------------------

_SIMPLE = {
    "ROUND_ROBIN": cluster_pb2.Cluster.ROUND_ROBIN,
    "LEAST_REQUEST": cluster_pb2.Cluster.LEAST_REQUEST,
    "LEAST_CONN": cluster_pb2.Cluster.LEAST_REQUEST,
    "RANDOM": cluster_pb2.Cluster.RANDOM,
}


def apply_load_balancer(cluster: cluster_pb2.Cluster, lb: LoadBalancerSettings | None) -> None:
    cluster.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST  # Istio's default since 1.14
    if lb is None:
        return
    simple = lb.simple
    chash = lb.consistent_hash
    if simple == "PASSTHROUGH":
        cluster.ClearField("eds_cluster_config")
        cluster.type = cluster_pb2.Cluster.ORIGINAL_DST
        cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    elif simple in _SIMPLE:
        cluster.lb_policy = _SIMPLE[simple]
    elif chash is not None:
        if chash.maglev is not None:
            cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
            if chash.maglev.table_size:
                cluster.maglev_lb_config.table_size.value = chash.maglev.table_size
        else:
            cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
            ring = chash.ring_hash.minimum_ring_size if chash.ring_hash is not None else 0
            cluster.ring_hash_lb_config.minimum_ring_size.value = ring or chash.minimum_ring_size or 1024
    _apply_warmup(cluster, lb)
    setting = lb.locality_lb_setting
    if setting is not None and setting.distribute:
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()


def _apply_warmup(cluster: cluster_pb2.Cluster, lb: LoadBalancerSettings) -> None:
    """Istio's setWarmup (and the deprecated warmupDurationSecs): slow start of new endpoints,
    for round robin and least request only."""
    if lb.warmup is None and lb.warmup_duration_secs is None:
        return
    if cluster.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN:
        slow = cluster.round_robin_lb_config.slow_start_config
    elif cluster.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST and cluster.type != cluster_pb2.Cluster.ORIGINAL_DST:
        slow = cluster.least_request_lb_config.slow_start_config
    else:
        return
    warmup = lb.warmup
    if warmup is None:
        if lb.warmup_duration_secs is not None:
            slow.slow_start_window.CopyFrom(duration(lb.warmup_duration_secs))
        return
    if warmup.duration is not None:
        slow.slow_start_window.CopyFrom(duration(warmup.duration))
    # Istio's defaults: a linear ramp (aggression 1) from 10 % of the weight; its runtime key
    # is Istio's placeholder (the value is fixed, not a runtime setting).
    slow.aggression.default_value = 1.0 if warmup.aggression is None else warmup.aggression
    slow.aggression.runtime_key = "("
    slow.min_weight_percent.value = 10.0 if warmup.minimum_percent is None else warmup.minimum_percent


def hash_policies(lb: LoadBalancerSettings | None) -> list[rc.RouteAction.HashPolicy]:
    """consistentHash -> the route's hash policy (Envoy hashes on the route, not the cluster)."""
    chash = lb.consistent_hash if lb is not None else None
    if chash is None:
        return []
    hp = rc.RouteAction.HashPolicy()
    cookie = chash.http_cookie
    if chash.http_header_name:
        hp.header.header_name = chash.http_header_name
    elif cookie is not None:
        hp.cookie.name = cookie.name
        if cookie.path:
            hp.cookie.path = cookie.path
        if cookie.ttl is not None:
            hp.cookie.ttl.CopyFrom(duration(cookie.ttl))
    elif chash.use_source_ip:
        hp.connection_properties.source_ip = True
    elif chash.http_query_parameter_name:
        hp.query_parameter.name = chash.http_query_parameter_name
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
    cluster: cluster_pb2.Cluster, pool: ConnectionPoolSettings | None, http2: bool, http_port: bool,
    retry_budget: RetryBudget | None = None,
) -> None:
    """Circuit breakers (with the retry budget), connect timeout, keepalive and upstream HTTP
    protocol options."""
    cluster.circuit_breakers.CopyFrom(default_circuit_breakers())
    th = cluster.circuit_breakers.thresholds[0]
    if retry_budget is not None:
        # Istio's applyRetryBudget, defaults included (a percent of 0.2, 3 concurrent retries)
        th.retry_budget.budget_percent.value = 0.2 if retry_budget.percent is None else retry_budget.percent
        th.retry_budget.min_retry_concurrency.value = retry_budget.min_retry_concurrency or 3
    tcp = pool.tcp if pool is not None else None
    http = pool.http if pool is not None else None
    options = hpo.HttpProtocolOptions()
    if tcp is not None:
        if tcp.max_connections:
            th.max_connections.value = tcp.max_connections
        if tcp.connect_timeout is not None:
            cluster.connect_timeout.CopyFrom(duration(tcp.connect_timeout))
        ka = tcp.tcp_keepalive
        if ka is not None:
            keep = cluster.upstream_connection_options.tcp_keepalive
            keep.SetInParent()
            if ka.probes:
                keep.keepalive_probes.value = ka.probes
            if ka.time is not None:
                keep.keepalive_time.value = max(1, int(ka.time.total_seconds()))
            if ka.interval is not None:
                keep.keepalive_interval.value = max(1, int(ka.interval.total_seconds()))
        if tcp.max_connection_duration is not None:
            options.common_http_protocol_options.max_connection_duration.CopyFrom(
                duration(tcp.max_connection_duration)
            )
    upgrade = False
    if http is not None:
        if http.http1_max_pending_requests:
            th.max_pending_requests.value = http.http1_max_pending_requests
        if http.http2_max_requests:
            th.max_requests.value = http.http2_max_requests
        if http.max_retries:
            th.max_retries.value = http.max_retries
        if http.max_requests_per_connection:
            options.common_http_protocol_options.max_requests_per_connection.value = (
                http.max_requests_per_connection
            )
        if http.idle_timeout is not None:
            options.common_http_protocol_options.idle_timeout.CopyFrom(duration(http.idle_timeout))
        upgrade = http.h2_upgrade_policy == "UPGRADE"
    if not http_port:
        return
    if http is not None and http.use_client_protocol:
        # Keep the downstream's protocol (HTTP/1.1 stays HTTP/1.1, h2 stays h2).
        options.use_downstream_protocol_config.http_protocol_options.SetInParent()
        options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    elif http2 or upgrade:
        options.explicit_http_config.http2_protocol_options.SetInParent()
        h2 = options.explicit_http_config.http2_protocol_options
        streams = http.max_concurrent_streams if http is not None else 0
        if streams:
            h2.max_concurrent_streams.value = streams
        keepalive = http.http2_keep_alive if http is not None else None
        if keepalive is not None:  # HTTP/2 PINGs on the upstream connections
            if keepalive.interval is not None:
                h2.connection_keepalive.interval.CopyFrom(duration(keepalive.interval))
            if keepalive.timeout is not None:
                h2.connection_keepalive.timeout.CopyFrom(duration(keepalive.timeout))
    else:
        options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(any_of(options))


# --- outlier detection ---------------------------------------------------------------------


def apply_outlier_detection(cluster: cluster_pb2.Cluster, od: OutlierDetection | None) -> None:
    if od is None:
        return
    out = outlier_detection_pb2.OutlierDetection()
    five = od.consecutive_5xx_errors
    if five is None and od.consecutive_errors:
        five = od.consecutive_errors
    if five is not None:
        out.consecutive_5xx.value = five
        out.enforcing_consecutive_5xx.value = 100 if five > 0 else 0
    gw = od.consecutive_gateway_errors
    if gw is not None:
        out.consecutive_gateway_failure.value = gw
        out.enforcing_consecutive_gateway_failure.value = 100 if gw > 0 else 0
    if od.interval is not None:
        out.interval.CopyFrom(duration(od.interval))
    if od.base_ejection_time is not None:
        out.base_ejection_time.CopyFrom(duration(od.base_ejection_time))
    if od.max_ejection_percent:
        out.max_ejection_percent.value = od.max_ejection_percent
    if od.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        if od.consecutive_local_origin_failures is not None:
            out.consecutive_local_origin_failure.value = od.consecutive_local_origin_failures
    out.enforcing_success_rate.value = 0
    cluster.outlier_detection.CopyFrom(out)
    # As Istio: minHealthPercent (default 0) is the panic threshold, so by default an
    # ejected host is never used again "in panic" while others remain.
    cluster.common_lb_config.healthy_panic_threshold.value = float(od.min_health_percent or 0)

