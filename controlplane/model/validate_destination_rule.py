"""DestinationRule validation (after Istio's validateDestinationRule and agent.ValidateTLS)."""

from __future__ import annotations

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import (
    check_dns1123_label,
    check_fqdn,
    check_port,
    check_wildcard_domain,
    is_ip,
)
from controlplane.model.destination_rule import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    DestinationRule,
    LoadBalancerSettings,
    OutlierDetection,
    TrafficPolicy,
)
from controlplane.model.validate_common import (
    error,
    validate_duration,
    validate_export_to,
    validate_int_percent,
    validate_labels,
    validate_workload_selector,
    warning,
)

# --- DestinationRule -------------------------------------------------------------------------

_TOPOLOGY_LABELS = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
)


def validate_destination_rule(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, DestinationRule)
    spec = resource.spec
    if message := check_wildcard_domain(spec.host):
        error(errors, "spec.host", message)
    if spec.traffic_policy is not None:
        _validate_traffic_policy(spec.traffic_policy, "spec.trafficPolicy", errors)
    names: set[str] = set()
    for index, subset in enumerate(spec.subsets):
        path = f"spec.subsets[{index}]"
        if not subset.name:
            error(errors, f"{path}.name", "subset name cannot be empty")
        elif check_dns1123_label(subset.name):
            error(errors, f"{path}.name", f"subset name is invalid: {subset.name}")
        elif subset.name in names:
            error(errors, f"{path}.name", f"duplicate subset names: {subset.name}")
        names.add(subset.name)
        if not subset.labels:
            warning(
                errors,
                f"{path}.labels",
                "subset has no labels: it selects every endpoint of the host",
            )
        validate_labels(subset.labels, f"{path}.labels", errors)
        if subset.traffic_policy is not None:
            _validate_traffic_policy(subset.traffic_policy, f"{path}.trafficPolicy", errors)
    validate_export_to(
        spec.export_to,
        "spec.exportTo",
        resource.meta.namespace,
        errors,
        workload_selector=spec.workload_selector is not None,
    )
    if spec.workload_selector is not None:
        validate_workload_selector(
            spec.workload_selector.match_labels, "spec.workloadSelector.matchLabels", errors
        )


def _validate_traffic_policy(policy: TrafficPolicy, path: str, errors: list[FieldError]) -> None:
    if (
        policy.load_balancer is None
        and policy.connection_pool is None
        and policy.outlier_detection is None
        and policy.tls is None
        and not policy.port_level_settings
        and policy.tunnel is None
        and policy.proxy_protocol is None
        and policy.retry_budget is None
    ):
        error(errors, path, "traffic policy must have at least one field")
        return
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        error(errors, path, "tunnel and proxyProtocol must not be set together")
    _validate_common_policy(
        policy.load_balancer,
        policy.connection_pool,
        policy.outlier_detection,
        policy.tls,
        path,
        errors,
    )
    seen: set[int] = set()
    for index, port_policy in enumerate(policy.port_level_settings):
        p_path = f"{path}.portLevelSettings[{index}]"
        if port_policy.port is None:
            error(errors, f"{p_path}.port", "portTrafficPolicy must have valid port")
        else:
            number = port_policy.port.number
            if message := check_port(number):
                error(errors, f"{p_path}.port.number", message)
            elif number in seen:
                error(errors, f"{p_path}.port.number", f"port number {number} duplicated")
            seen.add(number)
        if (
            port_policy.load_balancer is None
            and port_policy.connection_pool is None
            and port_policy.outlier_detection is None
            and port_policy.tls is None
        ):
            error(errors, p_path, "port traffic policy must have at least one field")
        _validate_common_policy(
            port_policy.load_balancer,
            port_policy.connection_pool,
            port_policy.outlier_detection,
            port_policy.tls,
            p_path,
            errors,
        )
    if policy.tunnel is not None:
        tunnel, t_path = policy.tunnel, f"{path}.tunnel"
        if tunnel.protocol not in ("", "CONNECT", "POST"):
            error(errors, f"{t_path}.protocol", 'tunnel protocol must be "CONNECT" or "POST"')
        if check_fqdn(tunnel.target_host) and not is_ip(tunnel.target_host):
            error(
                errors,
                f"{t_path}.targetHost",
                "tunnel target host must be valid FQDN or IP address",
            )
        if message := check_port(tunnel.target_port):
            error(errors, f"{t_path}.targetPort", f"tunnel target port is invalid: {message}")
    budget = policy.retry_budget
    if budget is not None and budget.percent is not None and not 0 <= budget.percent <= 100:
        error(errors, f"{path}.retryBudget.percent", "percent must be in range 0..100")


def _validate_common_policy(
    lb: LoadBalancerSettings | None,
    pool: ConnectionPoolSettings | None,
    outlier: OutlierDetection | None,
    tls: ClientTLSSettings | None,
    path: str,
    errors: list[FieldError],
) -> None:
    if lb is not None:
        _validate_load_balancer(lb, f"{path}.loadBalancer", errors)
    if pool is not None:
        validate_connection_pool(pool, f"{path}.connectionPool", errors)
    if outlier is not None:
        _validate_outlier_detection(outlier, f"{path}.outlierDetection", errors)
    if tls is not None:
        _validate_client_tls(tls, f"{path}.tls", errors)


def _is_prime(value: int) -> bool:
    if 0 < value < 4:
        return True
    if value % 2 == 0:
        return False
    return all(value % factor for factor in range(3, int(value**0.5) + 1, 2))


def _validate_load_balancer(lb: LoadBalancerSettings, path: str, errors: list[FieldError]) -> None:
    if lb.simple is not None and lb.consistent_hash is not None:
        error(errors, path, "only one of simple or consistentHash may be set")
    if lb.consistent_hash is not None:
        ch, c_path = lb.consistent_hash, f"{path}.consistentHash"
        keys = [
            k
            for k in (
                ch.http_header_name,
                ch.http_cookie,
                ch.use_source_ip,
                ch.http_query_parameter_name,
            )
            if k is not None
        ]
        if len(keys) > 1:
            error(
                errors,
                c_path,
                "only one of httpHeaderName, httpCookie, useSourceIp or "
                "httpQueryParameterName may be set",
            )
        elif not keys:
            warning(errors, c_path, "consistentHash has no hash key: requests are spread at random")
        if ch.http_cookie is not None and not ch.http_cookie.name:
            error(errors, f"{c_path}.httpCookie.name", "name required for HttpCookie")
        if ch.ring_hash is not None and ch.maglev is not None:
            error(errors, c_path, "only one of ringHash or maglev may be set")
        if ch.minimum_ring_size is not None:
            warning(
                errors,
                f"{c_path}.minimumRingSize",
                "consistent hash MinimumRingSize is deprecated, "
                "use ConsistentHashLB's RingHash configuration instead",
            )
            if ch.ring_hash is not None or ch.maglev is not None:
                error(
                    errors,
                    f"{c_path}.minimumRingSize",
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                )
        if ch.maglev is not None:
            size, m_path = ch.maglev.table_size, f"{c_path}.maglev.tableSize"
            if size == 0:
                error(errors, m_path, "tableSize must be set for maglev")
            elif size >= 5000011:
                error(errors, m_path, "tableSize must be less than 5000011 for maglev")
            elif not _is_prime(size):
                error(errors, m_path, "tableSize must be a prime number for maglev")
    if lb.locality_lb_setting is not None:
        _validate_locality_lb(lb, f"{path}.localityLbSetting", errors)
    if lb.warmup is not None:
        w, w_path = lb.warmup, f"{path}.warmup"
        if w.duration is None:
            error(errors, f"{w_path}.duration", "Required value")
        else:
            validate_duration(w.duration, f"{w_path}.duration", errors)
        if w.minimum_percent is not None and not 0 <= w.minimum_percent <= 100:
            error(
                errors,
                f"{w_path}.minimumPercent",
                f"Invalid value: {w.minimum_percent}: must be in range 0..100",
            )
        if w.aggression is not None and w.aggression < 1:
            error(
                errors, f"{w_path}.aggression", f"Invalid value: {w.aggression}: must be at least 1"
            )
    validate_duration(lb.warmup_duration_secs, f"{path}.warmupDurationSecs", errors)


def _validate_locality_lb(lb: LoadBalancerSettings, path: str, errors: list[FieldError]) -> None:
    setting = lb.locality_lb_setting
    assert setting is not None
    if setting.distribute and setting.failover:
        error(errors, path, "can not simultaneously specify 'distribute' and 'failover'")
        return
    if setting.failover:
        for index, label in enumerate(setting.failover_priority):
            if label in _TOPOLOGY_LABELS:
                error(
                    errors,
                    f"{path}.failoverPriority[{index}]",
                    f"can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'",
                )
    sources: set[str] = set()
    for index, item in enumerate(setting.distribute):
        d_path = f"{path}.distribute[{index}]"
        if message := check_locality(item.from_):
            error(errors, f"{d_path}.from", message)
        elif item.from_ in sources:
            error(
                errors,
                f"{d_path}.from",
                f"locality {item.from_} overlap with previous specified ones",
            )
        sources.add(item.from_)
        for locality, weight in item.to.items():
            if not 1 <= weight <= 100:
                error(
                    errors, f"{d_path}.to[{locality}]", "locality weight must be in range [1, 100]"
                )
            if message := check_locality(locality):
                error(errors, f"{d_path}.to[{locality}]", message)
        if sum(item.to.values()) != 100:
            error(errors, f"{d_path}.to", f"total locality weight {sum(item.to.values())} != 100")
    for index, failover in enumerate(setting.failover):
        f_path = f"{path}.failover[{index}]"
        if failover.from_ == failover.to:
            error(errors, f_path, "locality lb failover settings must specify different regions")
        if "/" in failover.from_ or "/" in failover.to:
            error(errors, f_path, "locality lb failover only specify region")
        if "*" in failover.from_ or "*" in failover.to:
            error(errors, f_path, "locality lb failover region should not contain '*' wildcard")


def check_locality(locality: str) -> str:
    """``region/zone/subzone`` where ``*`` may only be a whole, last segment."""
    if not locality:
        return "locality must not be empty"
    parts = locality.split("/")
    if len(parts) > 3:
        return f"locality {locality} has more than region/zone/subzone"
    for index, part in enumerate(parts):
        if "*" in part and (part != "*" or index != len(parts) - 1):
            return f"locality {locality} wildcard '*' must be in the last segment"
        if not part:
            return f"locality {locality} must not have empty segments"
    return ""


def validate_connection_pool(
    pool: ConnectionPoolSettings, path: str, errors: list[FieldError]
) -> None:
    if pool.http is None and pool.tcp is None:
        error(errors, path, "connection pool must have at least one field")
    if pool.http is not None:
        http, h_path = pool.http, f"{path}.http"
        for name, value in (
            ("http1MaxPendingRequests", http.http1_max_pending_requests),
            ("http2MaxRequests", http.http2_max_requests),
            ("maxRequestsPerConnection", http.max_requests_per_connection),
            ("maxRetries", http.max_retries),
            ("maxConcurrentStreams", http.max_concurrent_streams),
        ):
            if value < 0:
                error(errors, f"{h_path}.{name}", f"{name} must be non-negative")
        validate_duration(http.idle_timeout, f"{h_path}.idleTimeout", errors)
        if http.h2_upgrade_policy == "UPGRADE" and http.use_client_protocol:
            error(
                errors,
                f"{h_path}.useClientProtocol",
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            )
        if http.http2_keep_alive is not None:
            validate_duration(
                http.http2_keep_alive.interval, f"{h_path}.http2KeepAlive.interval", errors
            )
            validate_duration(
                http.http2_keep_alive.timeout, f"{h_path}.http2KeepAlive.timeout", errors
            )
    if pool.tcp is not None:
        tcp, t_path = pool.tcp, f"{path}.tcp"
        if tcp.max_connections < 0:
            error(errors, f"{t_path}.maxConnections", "max connections must be non-negative")
        validate_duration(tcp.connect_timeout, f"{t_path}.connectTimeout", errors)
        validate_duration(tcp.max_connection_duration, f"{t_path}.maxConnectionDuration", errors)
        validate_duration(tcp.idle_timeout, f"{t_path}.idleTimeout", errors)
        if tcp.tcp_keepalive is not None:
            validate_duration(tcp.tcp_keepalive.time, f"{t_path}.tcpKeepalive.time", errors)
            validate_duration(tcp.tcp_keepalive.interval, f"{t_path}.tcpKeepalive.interval", errors)


def _validate_outlier_detection(od: OutlierDetection, path: str, errors: list[FieldError]) -> None:
    for name, value in (
        ("consecutiveErrors", od.consecutive_errors),
        ("consecutive5xxErrors", od.consecutive_5xx_errors),
        ("consecutiveGatewayErrors", od.consecutive_gateway_errors),
        ("consecutiveLocalOriginFailures", od.consecutive_local_origin_failures),
    ):
        if value is not None and value < 0:
            error(errors, f"{path}.{name}", f"outlier detection {name} must be non-negative")
    if od.consecutive_errors:
        warning(
            errors,
            f"{path}.consecutiveErrors",
            "outlier detection consecutive errors is deprecated, "
            "use consecutiveGatewayErrors or consecutive5xxErrors instead",
        )
    if (
        od.consecutive_local_origin_failures or 0
    ) > 0 and not od.split_external_local_origin_errors:
        error(
            errors,
            f"{path}.consecutiveLocalOriginFailures",
            "outlier detection consecutive local origin failures is specified, but split external "
            "local origin errors is set to false",
        )
    validate_duration(od.interval, f"{path}.interval", errors)
    validate_duration(od.base_ejection_time, f"{path}.baseEjectionTime", errors)
    validate_int_percent(od.max_ejection_percent, f"{path}.maxEjectionPercent", errors)
    validate_int_percent(od.min_health_percent, f"{path}.minHealthPercent", errors)


def _validate_client_tls(tls: ClientTLSSettings, path: str, errors: list[FieldError]) -> None:
    """Istio's agent.ValidateTLS, plus a warning for files Envoy would ignore under ISTIO_MUTUAL."""
    if tls.insecure_skip_verify:
        if tls.mode == "SIMPLE" and (
            tls.ca_certificates or tls.credential_name or tls.subject_alt_names
        ):
            error(
                errors,
                f"{path}.insecureSkipVerify",
                "cannot specify CaCertificates or CredentialName or "
                "SubjectAltNames when InsecureSkipVerify is set true",
            )
        if tls.mode == "MUTUAL" and (tls.ca_certificates or tls.subject_alt_names):
            error(
                errors,
                f"{path}.insecureSkipVerify",
                "cannot specify CaCertificates or SubjectAltNames "
                "when InsecureSkipVerify is set true",
            )
    if tls.mode in ("SIMPLE", "MUTUAL") and tls.credential_name:
        if tls.client_certificate or tls.private_key or tls.ca_certificates or tls.ca_crl:
            error(
                errors,
                f"{path}.credentialName",
                "cannot specify client certificates or CA certificate "
                "or CA CRL If credentialName is set",
            )
        return
    if tls.mode == "MUTUAL":
        if not tls.client_certificate:
            error(errors, f"{path}.clientCertificate", "client certificate required for mutual tls")
        if not tls.private_key:
            error(errors, f"{path}.privateKey", "private key required for mutual tls")
    if tls.mode == "ISTIO_MUTUAL" and (
        tls.client_certificate or tls.private_key or tls.ca_certificates or tls.credential_name
    ):
        warning(
            errors,
            path,
            "ISTIO_MUTUAL uses the mesh certificates: the certificate files and "
            "credentialName given here are ignored",
        )
