"""Terminal network filters (HTTP connection manager, tcp_proxy) and listener filters
(inspectors). The filters inside a chain come from the registry (``filters/__init__``)."""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.route.v3 import route_pb2
from envoy.data.accesslog.v3 import accesslog_pb2 as log_types
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from controlplane.translate.pb import ads_source, any_of

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
HTTP_INSPECTOR = "envoy.filters.listener.http_inspector"

HCM_TYPE = hcm_pb2.HttpConnectionManager
_CONNECTED = log_types.TcpUpstreamConnected


def http_connection_manager(
    stat_prefix: str,
    http_filters: list[hcm_pb2.HttpFilter],
    *,
    rds_name: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
    http2: bool = False,
    path_normalization: str = "BASE",
    use_remote_address: bool = False,
    access_logs: Sequence[accesslog_pb2.AccessLog] = (),
) -> lc.Filter:
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix=stat_prefix)
    hcm.access_log.extend(access_logs)
    hcm.codec_type = hcm_pb2.HttpConnectionManager.AUTO
    _normalize_paths(hcm, path_normalization)
    if rds_name is not None:
        hcm.rds.config_source.CopyFrom(ads_source())
        hcm.rds.route_config_name = rds_name
    elif route_config is not None:
        hcm.route_config.CopyFrom(route_config)
    hcm.http_filters.extend(http_filters)
    hcm.use_remote_address.value = use_remote_address  # true at the edge (gateways), as Istio
    hcm.upgrade_configs.add(upgrade_type="websocket")
    if http2:
        hcm.http2_protocol_options.SetInParent()
    return lc.Filter(name=HCM, typed_config=any_of(hcm))


def _normalize_paths(hcm: hcm_pb2.HttpConnectionManager, mode: str) -> None:
    """Istio's pathNormalization: routes and RBAC see the normalized path."""
    hcm.path_with_escaped_slashes_action = hcm_pb2.HttpConnectionManager.KEEP_UNCHANGED
    hcm.normalize_path.value = mode != "NONE"
    if mode in ("MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"):
        hcm.merge_slashes = True
    if mode == "DECODE_AND_MERGE_SLASHES":
        hcm.path_with_escaped_slashes_action = hcm_pb2.HttpConnectionManager.UNESCAPE_AND_FORWARD


def tcp_proxy(
    stat_prefix: str,
    cluster: str = "",
    weighted: list[tuple[str, int]] | None = None,
    access_logs: Sequence[accesslog_pb2.AccessLog] = (),
) -> lc.Filter:
    """A logger that filters on the upstream-connected log type (Istio's TCP opened-connections
    counter) makes tcp_proxy log when its upstream connects, not only at the end."""
    tp = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    tp.access_log.extend(access_logs)
    if any(_CONNECTED in log.filter.log_type_filter.types for log in access_logs):
        tp.access_log_options.flush_access_log_on_connected = True
    if weighted and len(weighted) > 1:
        for name, weight in weighted:
            tp.weighted_clusters.clusters.add(name=name, weight=max(weight, 0))
    else:
        tp.cluster = weighted[0][0] if weighted else cluster
    return lc.Filter(name=TCP_PROXY, typed_config=any_of(tp))


def tls_inspector() -> lc.ListenerFilter:
    return lc.ListenerFilter(name=TLS_INSPECTOR, typed_config=any_of(tls_inspector_pb2.TlsInspector()))


def original_dst() -> lc.ListenerFilter:
    return lc.ListenerFilter(name=ORIGINAL_DST, typed_config=any_of(original_dst_pb2.OriginalDst()))


def http_inspector() -> lc.ListenerFilter:
    return lc.ListenerFilter(name=HTTP_INSPECTOR, typed_config=any_of(http_inspector_pb2.HttpInspector()))
