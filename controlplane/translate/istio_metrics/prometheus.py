"""Prometheus scrape configuration for Istio's metrics on stock Envoy.

Envoy prints the stats access logger's metrics under its own prefix
(``envoy_istiocustom_istio_requests_total``); ``METRIC_RELABEL_CONFIGS`` renames them back to
Istio's names, so Istio's PromQL, Kiali and Istio's Grafana dashboards work unchanged. Two
configurations carry them: Kubernetes (``deploy/prometheus/prometheus.yaml``, as Istio's addon:
pods' ``*-envoy-prom`` ports and istiod's ``http-monitoring``), and the local mesh
(``controlplane prometheus-config``: the control plane's 15014, and every sidecar it serves,
discovered from its ``/debug/prometheus_sd``).
"""

from __future__ import annotations

import re
from typing import Any

from controlplane.translate.istio_metrics.loggers import STAT_PREFIX

ENVOY_PREFIX = f"envoy_{STAT_PREFIX}_"
METRIC_RELABEL_CONFIGS: list[dict[str, Any]] = [
    {
        "source_labels": ["__name__"],
        "regex": f"{ENVOY_PREFIX}(istio_.*)",
        "target_label": "__name__",
        "replacement": "$1",
        "action": "replace",
    }
]
SD_PATH = "/debug/prometheus_sd"
_RENAME = re.compile(f"^{ENVOY_PREFIX}(istio_.*)$")


def istio_name(envoy_name: str) -> str:
    """The name Prometheus stores after ``METRIC_RELABEL_CONFIGS``."""
    m = _RENAME.match(envoy_name)
    return m.group(1) if m else envoy_name


def local_config(monitoring: str, *, interval: str = "15s") -> dict[str, Any]:
    """Scrape the control plane at ``monitoring`` (host:port of 15014) and every sidecar it
    serves (HTTP service discovery from the same port)."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "istiod", "static_configs": [{"targets": [monitoring]}]},
            {
                "job_name": "envoy-stats",
                "metrics_path": "/stats/prometheus",
                "http_sd_configs": [{"url": f"http://{monitoring}{SD_PATH}", "refresh_interval": interval}],
                "metric_relabel_configs": METRIC_RELABEL_CONFIGS,
            },
        ],
    }


def kubernetes_config(*, interval: str = "15s") -> dict[str, Any]:
    """As Istio's Prometheus addon: Envoy's ``*-envoy-prom`` container ports, istiod's
    ``http-monitoring`` endpoint in istio-system."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "istiod",
                "kubernetes_sd_configs": [{"role": "endpoints", "namespaces": {"names": ["istio-system"]}}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpoint_port_name"],
                        "action": "keep",
                        "regex": "istiod;http-monitoring",
                    }
                ],
            },
            {
                "job_name": "envoy-stats",
                "metrics_path": "/stats/prometheus",
                "kubernetes_sd_configs": [{"role": "pod"}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "action": "keep",
                        "regex": ".*-envoy-prom",
                    },
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
                "metric_relabel_configs": METRIC_RELABEL_CONFIGS,
            },
        ],
    }
