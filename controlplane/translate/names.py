"""Istio's resource names, in one place."""

from __future__ import annotations

PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_CLUSTER = "BlackHoleCluster"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"
VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
BLACKHOLE_ROUTE = "block_all"
ALLOW_ANY_ROUTE = "allow_any"


def cluster_name(direction: str, port: int, subset: str = "", host: str = "") -> str:
    return f"{direction}|{port}|{subset}|{host}"


def outbound_cluster(host: str, port: int, subset: str = "") -> str:
    return cluster_name("outbound", port, subset, host)


def inbound_cluster(port: int) -> str:
    return cluster_name("inbound", port)


def parse_cluster_name(name: str) -> tuple[str, int, str, str] | None:
    """(direction, port, subset, host) from an Istio cluster name, or None."""
    parts = name.split("|")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2], parts[3]


def mtls_sni(host: str, port: int, subset: str = "") -> str:
    """The SNI Istio sets on mTLS upstream connections."""
    return f"outbound_.{port}_.{subset}_.{host}"


def listener_name(address: str, port: int) -> str:
    return f"{address}_{port}"


def virtual_host_name(host: str, port: int) -> str:
    return f"{host}:{port}"



def extension_config(namespace: str, filter_name: str) -> str:
    """The ECDS resource name of a filter's config on a proxy of ``namespace`` (it is also the
    filter's name in the chain), in Istio's ``<namespace>.<name>`` style of ECDS names. It
    never depends on the config, so a config change leaves the listener untouched."""
    return f"{namespace}.{filter_name}"
