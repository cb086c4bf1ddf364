"""One-line descriptions of requests and responses, for a stream's debug log."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds import types


def describe_request(request) -> str:
    error = f" error={request.error_detail.message!r}" if request.HasField("error_detail") else ""
    if isinstance(request, discovery_pb2.DiscoveryRequest):
        return (
            f"{types.short_name(request.type_url)} names={list(request.resource_names)} "
            f"nonce={request.response_nonce!r} version={request.version_info!r}{error}"
        )
    return (
        f"{types.short_name(request.type_url)} +{list(request.resource_names_subscribe)} "
        f"-{list(request.resource_names_unsubscribe)} nonce={request.response_nonce!r}{error}"
    )


def describe_response(delta: bool, raw: bytes) -> str:
    if not delta:
        r = discovery_pb2.DiscoveryResponse.FromString(raw)
        return (
            f"{types.short_name(r.type_url)} nonce={r.nonce} version={r.version_info} "
            f"n={len(r.resources)}"
        )
    d = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
    return (
        f"{types.short_name(d.type_url)} nonce={d.nonce} +{[x.name for x in d.resources]} "
        f"-{list(d.removed_resources)}"
    )
