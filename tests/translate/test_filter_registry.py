"""The filter registry: chains come from the filter modules, in their declared positions."""

from __future__ import annotations

from typing import ClassVar

import pytest
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.http.buffer.v3 import buffer_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from controlplane.translate import (
    LISTENER_TYPE,
    MeshConfig,
    Proxy,
    filters,
    push_context,
    translate,
)
from controlplane.translate.filters.base import FilterSite, HttpFilter, NetworkFilter
from controlplane.translate.pb import any_of
from tests.translate.support import GOLDEN, load_documents, snapshot_of


def _hcm_filters(listeners) -> list[list[str]]:
    chains = []
    for lst in listeners:
        for fc in [*lst.filter_chains, lst.default_filter_chain]:
            for f in fc.filters:
                if f.name == "envoy.filters.network.http_connection_manager":
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    chains.append([h.name for h in hcm.http_filters])
    return chains


def _translate(case: str, proxy: Proxy):
    ctx = push_context(snapshot_of(load_documents((GOLDEN / case / "input.yaml").read_text())), MeshConfig())
    return translate(ctx, proxy)[LISTENER_TYPE]


def test_registry_order_is_istios() -> None:
    assert [f.name for f in filters.HTTP_FILTERS] == [
        # Istio's metadata exchange: the peer's facts lifted, ours sent (filters/istio_stats.py)
        "istio.metadata_exchange", "istio.metadata_exchange.send",
        "envoy.filters.http.jwt_authn",
        # AuthorizationPolicy CUSTOM: shadow rules marking requests, then ext_authz (filters/ext_authz.py)
        "envoy.filters.http.rbac", "envoy.filters.http.ext_authz",
        # AuthorizationPolicy: AUDIT, DENY, ALLOW (filters/rbac.py)
        "envoy.filters.http.rbac", "envoy.filters.http.rbac", "envoy.filters.http.rbac",
        "envoy.filters.http.fault", "envoy.filters.http.cors",
        # Istio's metrics: stats access loggers only, no filter in the chain
        "istio.stats", "envoy.filters.http.router",
    ]
    positions = [f.position for f in filters.HTTP_FILTERS]
    assert positions == sorted(positions)


class _Buffer(HttpFilter):
    """A stand-in for a new filter module (RBAC, JWT, ...): inbound only, position 300."""

    name: ClassVar[str] = "envoy.filters.http.buffer"
    position: ClassVar[int] = 300

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        if site.direction != "inbound":
            return None
        return self.entry(buffer_pb2.Buffer(max_request_bytes={"value": 1024}))


class _DenyAll(NetworkFilter):
    name: ClassVar[str] = "envoy.filters.network.rbac"
    position: ClassVar[int] = 300

    def network_filter(self, site: FilterSite) -> lc.Filter | None:
        return lc.Filter(name=self.name, typed_config=any_of(rbac_pb2.RBAC(stat_prefix="tcp.")))


def test_a_registered_http_filter_reaches_every_chain_of_its_direction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filters, "HTTP_FILTERS", tuple(sorted([*filters.HTTP_FILTERS, _Buffer()], key=lambda f: f.position)))
    listeners = _translate("bookinfo_all_v1", Proxy.make("sidecar", "default", labels={"app": "reviews"}))
    inbound = _hcm_filters([lst for lst in listeners if lst.name == "virtualInbound"])
    outbound = _hcm_filters([lst for lst in listeners if lst.name != "virtualInbound"])
    assert inbound and all(chain[2] == "envoy.filters.http.buffer" for chain in inbound)  # after the exchange
    assert outbound and not any("envoy.filters.http.buffer" in chain for chain in outbound)
    assert all(chain[-1] == "envoy.filters.http.router" for chain in inbound + outbound)


def test_a_registered_network_filter_goes_before_the_terminal_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filters, "NETWORK_FILTERS", (_DenyAll(),))
    listeners = _translate("tcp_routes", Proxy.make("sidecar", "default", labels={"app": "client"}))
    # Every chain to a service (passthrough and blackhole chains carry no policy, as Istio's).
    chains = [
        fc for lst in listeners for fc in lst.filter_chains
        if fc.filters and _terminal_cluster(fc.filters[-1]).startswith(("outbound|", "inbound|"))
    ]
    assert chains
    for fc in chains:
        assert [f.name for f in fc.filters][:1] == ["envoy.filters.network.rbac"] and len(fc.filters) == 2


def _terminal_cluster(f: lc.Filter) -> str:
    if f.name != "envoy.filters.network.tcp_proxy":
        return "outbound|http"  # the HCM routes to service clusters
    tp = tcp_proxy_pb2.TcpProxy()
    f.typed_config.Unpack(tp)
    return tp.cluster or tp.weighted_clusters.clusters[0].name


def test_a_filter_brings_the_clusters_it_sends_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter module declares clusters as well as its chain entry: the builder adds them."""
    from envoy.config.cluster.v3 import cluster_pb2

    from controlplane.translate import CLUSTER_TYPE

    class _Sender(_Buffer):
        def clusters(self, ctx, proxy, existing):  # type: ignore[no-untyped-def]
            return [] if "sender-target" in existing else [cluster_pb2.Cluster(name="sender-target")]

    monkeypatch.setattr(filters, "HTTP_FILTERS", (*filters.HTTP_FILTERS, _Sender()))
    ctx = push_context(snapshot_of(load_documents((GOLDEN / "bookinfo_all_v1" / "input.yaml").read_text())), MeshConfig())
    names = [c.name for c in translate(ctx, Proxy.make("sidecar", "default", labels={"app": "reviews"}))[CLUSTER_TYPE]]
    assert names.count("sender-target") == 1
