"""xDS type URLs, their short names and the order in which ADS sends them."""

from __future__ import annotations

_PREFIX = "type.googleapis.com/"

CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
SCOPED_ROUTE = _PREFIX + "envoy.config.route.v3.ScopedRouteConfiguration"
VIRTUAL_HOST = _PREFIX + "envoy.config.route.v3.VirtualHost"
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
# ECDS: a filter's config served apart from its listener (HttpFilter/Filter ``config_discovery``).
EXTENSION_CONFIG = _PREFIX + "envoy.config.core.v3.TypedExtensionConfig"
RUNTIME = _PREFIX + "envoy.service.runtime.v3.Runtime"

SHORT_NAMES: dict[str, str] = {
    CLUSTER: "CDS",
    ENDPOINT: "EDS",
    LISTENER: "LDS",
    ROUTE: "RDS",
    SCOPED_ROUTE: "SRDS",
    VIRTUAL_HOST: "VHDS",
    SECRET: "SDS",
    EXTENSION_CONFIG: "ECDS",
    RUNTIME: "RTDS",
}

# ADS push order (xds_protocol "eventual consistency considerations"): within one pass types go
# in this order, and a type is held back while a type it depends on waits for its ACK, so Envoy
# never sees a listener before its clusters warmed.
PUSH_ORDER: tuple[str, ...] = (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    EXTENSION_CONFIG,
    SCOPED_ROUTE,
    VIRTUAL_HOST,
    SECRET,
)

# What each type waits for. EDS and SDS wait for nothing: Envoy holds its CDS ACK until new
# clusters warmed, and they warm on EDS (and SDS), so gating those on the CDS ACK deadlocks
# until Envoy's initial fetch timeout. Routes wait for clusters so a new route finds its cluster;
# extension configs (ECDS) are named by listeners and asked for after them, as routes are, and
# wait for clusters too (an ext_authz or remote JWKS config names one).
HELD_BACK_BY: dict[str, frozenset[str]] = {
    CLUSTER: frozenset(),
    ENDPOINT: frozenset(),
    SECRET: frozenset(),
    LISTENER: frozenset({CLUSTER, ENDPOINT}),
    ROUTE: frozenset({CLUSTER, ENDPOINT}),
    EXTENSION_CONFIG: frozenset({CLUSTER, ENDPOINT}),
    SCOPED_ROUTE: frozenset({CLUSTER, ENDPOINT}),
    VIRTUAL_HOST: frozenset({CLUSTER, ENDPOINT}),
}
DEFAULT_HELD_BACK_BY = frozenset({CLUSTER, ENDPOINT, LISTENER, ROUTE})

# Types that may still point at a cluster: a cluster is removed only once these are settled.
CLUSTER_USERS: frozenset[str] = frozenset(
    {LISTENER, ROUTE, EXTENSION_CONFIG, SCOPED_ROUTE, VIRTUAL_HOST}
)

# Types whose SotW responses carry the complete set and where an empty first request is a
# (legacy) wildcard subscription.
FULL_STATE_TYPES: frozenset[str] = frozenset({CLUSTER, LISTENER})

# Types whose resources a client must keep for as long as it subscribes to them. Envoy holds an
# ECDS subscription while any listener uses the filter, draining ones included; a delta removal
# would replace the config of those filters with their default (none: every request refused).
# So a name that left the snapshot is not removed while the client still subscribes to it, and
# it unsubscribes once the last listener using it is gone. A subscribed name the client never
# held is answered with a removal as usual.
KEPT_WHILE_SUBSCRIBED: frozenset[str] = frozenset({EXTENSION_CONFIG})

WILDCARD = "*"


def short_name(type_url: str) -> str:
    name = SHORT_NAMES.get(type_url)  # (no split per call: counters ask at each ACK)
    return name if name is not None else type_url.rsplit(".", 1)[-1]


def order_index(type_url: str) -> int:
    try:
        return PUSH_ORDER.index(type_url)
    except ValueError:
        return len(PUSH_ORDER)


def held_back_by(type_url: str) -> frozenset[str]:
    return HELD_BACK_BY.get(type_url, DEFAULT_HELD_BACK_BY)
