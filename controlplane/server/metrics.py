"""Control plane metrics with the names Istio users already chart (pilot_*, citadel_*).

One ``Metrics`` object per runtime, on its own registry, so tests can run several
control planes in one process. Buckets fit sub-second pushes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

# Pushes and convergence are usually milliseconds; keep resolution there, up to 30 s.
_PUSH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZE_BUCKETS = (100, 1e3, 1e4, 1e5, 1e6, 4e6, 1e7, 4e7)


def Counter(
    name: str,
    documentation: str,
    labelnames: list[str] | tuple[str, ...] = (),
    *,
    registry: CollectorRegistry,
) -> Gauge:
    """A counter exposed under Istio's exact name.

    prometheus-client renames every Counter to ``<name>_total``; Istio exposes
    ``pilot_xds_pushes`` itself, and the dashboards users have query that name. A gauge
    that only ever goes up keeps the name and works with ``rate()``.
    """
    return Gauge(name, documentation, labelnames, registry=registry)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # process CPU seconds, resident memory, open fds
    PlatformCollector(registry=registry)
    return registry


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.xds_connected = Gauge(
            "pilot_xds",
            "Number of endpoints connected to this pilot using XDS.",
            ["version"],
            registry=r,
        )
        self.xds_pushes = Counter(
            "pilot_xds_pushes",
            "Pilot build and send errors for lds, rds, cds and eds.",
            ["type"],
            registry=r,
        )
        self.xds_push_time = Histogram(
            "pilot_xds_push_time",
            "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
            ["type"],
            buckets=_PUSH_BUCKETS,
            registry=r,
        )
        self.proxy_convergence_time = Histogram(
            "pilot_proxy_convergence_time",
            "Delay in seconds between config change and a proxy receiving all required configuration.",
            buckets=_PUSH_BUCKETS,
            registry=r,
        )
        self.debounce_time = Histogram(
            "pilot_debounce_time",
            "Delay in seconds between the first config enters debouncing and the merged push request is pushed into the push queue.",
            buckets=_PUSH_BUCKETS,
            registry=r,
        )
        self.xds_rejects = Counter(
            "pilot_total_xds_rejects",
            "Total number of XDS responses from pilot rejected by proxy.",
            ["type"],
            registry=r,
        )
        self.config_size_bytes = Histogram(
            "pilot_xds_config_size_bytes",
            "Distribution of configuration sizes pushed to clients",
            ["type"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        # Not in Istio (istiod logs these): xDS streams refused by a limit or by
        # authentication, by reason ("names_per_stream", "unauthenticated", ...).
        self.xds_refused = Counter(
            "pilot_xds_refused_streams",
            "xDS streams refused or ended by a limit or a failed authentication.",
            ["reason"],
            registry=r,
        )
        self.proxy_queue_time = Histogram(
            "pilot_proxy_queue_time",
            "Time a proxy is in the push queue before being dequeued.",
            buckets=_PUSH_BUCKETS,
            registry=r,
        )
        # Here: streams whose proxy did not take a response within the push send timeout
        # (counted once per stream; the stream then holds no push slot while it waits).
        self.xds_write_timeout = Counter(
            "pilot_xds_write_timeout",
            "Pilot XDS response write timeouts.",
            registry=r,
        )
        self.k8s_reg_events = Counter(
            "pilot_k8s_reg_events",
            "Events from k8s registry.",
            ["type", "event"],
            registry=r,
        )
        # Istio's pilot_total_xds_internal_errors counts failed xDS generation: here, proxy
        # groups whose translation failed (they keep their last config).
        self.xds_internal_errors = Counter(
            "pilot_total_xds_internal_errors",
            "Total number of internal XDS errors in pilot.",
            registry=r,
        )
        # Not an Istio metric (istiod rejects bad input at its webhook): input documents
        # currently rejected by validation, so they are not applied.
        self.config_errors = Gauge(
            "controlplane_input_errors",
            "Input resources currently rejected by validation (not applied).",
            registry=r,
        )
        # Istio's gauge, by EnvoyFilter (``ns/name``): here result="error" counts its patches left
        # out (a value Envoy's API cannot read, or a result Envoy would refuse).
        self.envoy_filter_status = Gauge(
            "pilot_envoy_filter_status",
            "Status of Envoy filters whether it was applied or errored.",
            ["name", "result"],
            registry=r,
        )
        self.push_triggers = Counter(
            "pilot_push_triggers",
            "Total number of times a push was triggered, labeled by reason for the push.",
            ["type"],
            registry=r,
        )
        self.services = Gauge("pilot_services", "Total services known to pilot.", registry=r)
        self.virtual_services = Gauge(
            "pilot_virt_services", "Total virtual services known to pilot.", registry=r
        )
        self.csr_count = Counter(
            "citadel_server_csr_count", "The number of CSRs received by Citadel server.", registry=r
        )
        self.certs_issued = Counter(
            "citadel_server_success_cert_issuance_count",
            "The number of certificates issuances that have succeeded.",
            registry=r,
        )
        self.csr_auth_failures = Counter(
            "citadel_server_authentication_failure_count",
            "The number of authentication failures.",
            registry=r,
        )
        self.csr_parsing_errors = Counter(
            "citadel_server_csr_parsing_err_count",
            "The number of errors occurred when parsing the CSR.",
            registry=r,
        )
        # Not in Istio (istiod has no CSR rate limit); named like its siblings.
        self.csr_rate_limited = Counter(
            "citadel_server_csr_rate_limited_count",
            "The number of CSRs refused because their peer address or identity sent too many.",
            ["limit"],
            registry=r,
        )
        self.jwks_fetch_success = Counter(
            "pilot_jwks_resolver_network_fetch_success_total",
            "Total number of successfully network fetch by pilot jwks resolver",
            registry=r,
        )
        self.jwks_fetch_fail = Counter(
            "pilot_jwks_resolver_network_fetch_fail_total",
            "Total number of failed network fetch by pilot jwks resolver",
            registry=r,
        )
