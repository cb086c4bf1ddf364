"""Envoy ``stats_config`` for sidecar bootstraps: Istio's tag extraction plus labels that
break request metrics down by destination service and by the reporting workload.

Stock Envoy has no Istio stats filter, so ``istio_requests_total`` does not exist. What it
has is its own counters named after our Istio cluster names; these tag regexes turn
``cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_200`` into
``envoy_cluster_upstream_rq{cluster_name=..., destination_service="reviews.default.svc...",
destination_service_name="reviews", destination_service_namespace="default",
destination_port="9080", destination_subset="v1", response_code="200", proxy_workload=...}``.
The ``proxy_*`` labels are fixed per Envoy (from the node): on outbound clusters they name
the source workload, on ``inbound|...`` clusters the destination workload. Istio's own metrics
(``istio_metrics``) carry their tags themselves: Envoy applies no tag extraction to them, and
the bootstrap gives their histograms Istio's buckets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX
from controlplane.translate.istio_metrics.loggers import (
    REQUEST_BYTES,
    REQUEST_DURATION,
    RESPONSE_BYTES,
    STAT_PREFIX,
)


def _istio_tags(domain_suffix: str) -> list[dict[str, str]]:
    """Istio's bootstrap stats_tags (tools/packaging/common/envoy_bootstrap.json)."""
    svc = re.escape(f"svc.{domain_suffix}")
    return [
        {"tag_name": "cluster_name", "regex": rf"^cluster\.((.+?(\..+?\.{svc})?)\.)"},
        {"tag_name": "tcp_prefix", "regex": r"^tcp\.((.*?)\.)\w+?$"},
        {"tag_name": "response_code", "regex": r"_rq(_(\d{3}))$"},
        {"tag_name": "response_code_class", "regex": r"_rq(_(\dxx))$"},
        {
            "tag_name": "http_conn_manager_listener_prefix",
            "regex": r"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
        },
        {
            "tag_name": "http_conn_manager_prefix",
            "regex": r"^http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
        },
        {
            "tag_name": "listener_address",
            "regex": r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
        },
    ]


def _destination_tags(domain_suffix: str) -> list[dict[str, str]]:
    """From ``outbound|<port>|<subset>|<name>.<namespace>.svc.<domain>`` cluster names (and the
    port of ``inbound|<port>||``). The first group is what the tag removes from the name (all
    inside the cluster name, which cluster_name removes anyway), the second its value."""
    svc = re.escape(f"svc.{domain_suffix}")
    head = r"^cluster\.outbound\|\d+\|[^|]*\|"
    return [
        {"tag_name": "destination_port", "regex": r"^cluster\.(?:outbound|inbound)\|((\d+))\|"},
        {"tag_name": "destination_subset", "regex": r"^cluster\.outbound\|\d+\|(([^|]+))\|"},
        {"tag_name": "destination_service", "regex": rf"{head}(([^|.]+\.[^|.]+\.{svc}))\."},
        {"tag_name": "destination_service_name", "regex": rf"{head}(([^|.]+))\.[^|.]+\.{svc}\."},
        {
            "tag_name": "destination_service_namespace",
            "regex": rf"{head}[^|.]+\.(([^|.]+))\.{svc}\.",
        },
    ]


# Istio's buckets (istio/proxy istio_stats): duration in ms; bytes 1, 10, ... 1e9. The stats
# access logger's histograms are named with their tags, so they are matched by prefix.
DURATION_BUCKETS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
)
BYTES_BUCKETS = tuple(10**i for i in range(10))


def istio_histogram_buckets() -> list[dict[str, Any]]:
    def prefix(metric: str) -> dict[str, str]:
        return {"prefix": f"{STAT_PREFIX}.{metric}"}

    return [
        {"match": prefix(REQUEST_DURATION), "buckets": list(DURATION_BUCKETS)},
        {"match": prefix(REQUEST_BYTES), "buckets": list(BYTES_BUCKETS)},
        {"match": prefix(RESPONSE_BYTES), "buckets": list(BYTES_BUCKETS)},
    ]


def _fixed(name: str, value: str) -> dict[str, str] | None:
    return {"tag_name": name, "fixed_value": value} if value else None


def stats_config(
    *,
    workload: str,
    namespace: str,
    labels: Mapping[str, str],
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
) -> dict[str, Any]:
    """The bootstrap ``stats_config`` (Istio's ``use_all_default_tags: false`` and its tags)."""
    fixed = [
        _fixed("proxy_workload", workload),
        _fixed("proxy_namespace", namespace),
        _fixed("proxy_app", labels.get("app", "") or labels.get("app.kubernetes.io/name", "")),
        _fixed(
            "proxy_version",
            labels.get("version", "") or labels.get("app.kubernetes.io/version", ""),
        ),
    ]
    return {
        "use_all_default_tags": False,
        "stats_tags": _istio_tags(domain_suffix)
        + _destination_tags(domain_suffix)
        + [f for f in fixed if f],
        "histogram_bucket_settings": istio_histogram_buckets(),
    }
