"""Protobuf wire-format helpers for the load client and the floor server: type URLs, the byte
patterns probes look for, and framing of pre-serialized resources into responses."""

from __future__ import annotations

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
SHORT = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS"}

ADS_SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
ADS_DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def string_field(field: int, text: str) -> bytes:
    return length_delimited(field, text.encode())


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def first_string(data: bytes) -> str | None:
    """Field 1 when it is the first field on the wire (the name of Cluster, Listener,
    RouteConfiguration and ClusterLoadAssignment, which serializers write first)."""
    if not data or data[0] != 0x0A:
        return None
    length, pos = read_varint(data, 1)
    return data[pos:pos + length].decode()


# --- patterns: serialized fragments that only the new content contains -----------------------


def endpoint_address(ip: str) -> bytes:
    """SocketAddress.address (field 2) = ip, length-prefixed: 10.0.0.3 never matches 10.0.0.30."""
    return string_field(2, ip)


def weighted_cluster(name: str, weight: int) -> bytes:
    """The start of a WeightedCluster.ClusterWeight: name (1) then weight (2, UInt32Value)."""
    return string_field(1, name) + length_delimited(2, b"\x08" + varint(weight))


def virtual_host(name: str) -> bytes:
    """VirtualHost.name (field 1), e.g. ``svc-7.ns-7.svc.cluster.local:8080``."""
    return string_field(1, name)
