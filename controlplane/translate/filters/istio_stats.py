"""Istio's stats filter and metadata exchange on stock Envoy.

- ``istio.metadata_exchange`` (first in the chain): each sidecar tells the other who it is in
  headers (``istio_metrics.workload.PEER_HEADERS``): the client's outbound chains add its
  facts to requests, the server's inbound chains add its own to responses (a
  ``header_mutation``); the receiving side lifts the peer's into dynamic metadata and removes
  them before the app sees them (``header_to_metadata``). First, so that replies a later filter
  makes (a 403 from RBAC, a fault's 500) carry the facts too.
- ``istio.stats`` (position STATS): no filter of its own, only the stats access loggers that
  make Istio's standard metrics on the chain's connection manager or tcp_proxy
  (``istio_metrics``).
"""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.http.header_to_metadata.v3 import header_to_metadata_pb2 as h2m
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.translate.filters.base import (
    GATEWAY,
    INBOUND,
    OUTBOUND,
    PEER_METADATA,
    STATS,
    FilterSite,
    HttpFilter,
)
from controlplane.translate.istio_metrics import site_access_logs
from controlplane.translate.istio_metrics.labels import literal
from controlplane.translate.istio_metrics.workload import (
    PEER_HEADERS,
    PEER_METADATA_NAMESPACE,
    missing_default,
    proxy_facts,
)

_CLIENT_SIDE = (OUTBOUND, GATEWAY)


def _lift(field: str, header: str) -> h2m.Config.Rule:
    present = h2m.Config.KeyValuePair(metadata_namespace=PEER_METADATA_NAMESPACE, key=field)
    missing = h2m.Config.KeyValuePair(
        metadata_namespace=PEER_METADATA_NAMESPACE, key=field, value=missing_default(field)
    )
    return h2m.Config.Rule(header=header, on_header_present=present, on_header_missing=missing, remove=True)


class PeerMetadataLift(HttpFilter):
    """The peer's facts into metadata, its headers removed: from requests on inbound chains,
    from responses on outbound ones."""

    name = "istio.metadata_exchange"
    position = PEER_METADATA

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        rules = [_lift(field, header) for field, header in PEER_HEADERS.items()]
        if site.direction == INBOUND:
            return self.entry(h2m.Config(request_rules=rules))
        if site.direction in _CLIENT_SIDE:
            return self.entry(h2m.Config(response_rules=rules))
        return None


class PeerMetadataSend(HttpFilter):
    """This proxy's facts to the peer: on requests it sends, on responses it returns."""

    name = "istio.metadata_exchange.send"
    position = PEER_METADATA

    def http_filter(self, site: FilterSite) -> hcm_pb2.HttpFilter | None:
        facts = proxy_facts(site.proxy)
        headers = [
            mutation_rules_pb2.HeaderMutation(
                append=base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=header, value=literal(getattr(facts, field))),
                    append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                )
            )
            for field, header in PEER_HEADERS.items()
        ]
        mutations = header_mutation_pb2.Mutations()
        if site.direction == INBOUND:
            mutations.response_mutations.extend(headers)
        elif site.direction in _CLIENT_SIDE:
            mutations.request_mutations.extend(headers)
        else:
            return None
        return self.entry(header_mutation_pb2.HeaderMutation(mutations=mutations))


class IstioStats(HttpFilter):
    """Istio's standard metrics: stats access loggers on HTTP and TCP chains alike."""

    name = "istio.stats"
    position = STATS

    def access_logs(self, site: FilterSite) -> list[accesslog_pb2.AccessLog]:
        return site_access_logs(site)


FILTERS = (PeerMetadataLift(), PeerMetadataSend(), IstioStats())
