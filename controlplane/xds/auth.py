"""The authentication hook and the grouping function the runtime injects into the server.

`authenticate(call, node)` returns the identity the caller's credential proves (None when the
server runs without authentication). Raise `Unauthenticated` for a missing or invalid credential
and `PermissionDenied` for a valid one that does not allow what the node claims; the server
ends the stream with the matching gRPC status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from envoy.config.core.v3 import base_pb2


class Unauthenticated(Exception):
    """No credential, or one we cannot verify (gRPC UNAUTHENTICATED)."""


class PermissionDenied(Exception):
    """A verified credential that does not allow what the proxy claims (gRPC PERMISSION_DENIED)."""


@dataclass(frozen=True)
class CallInfo:
    """What the transport tells about a call, without gRPC types (so tests can build one)."""

    metadata: tuple[tuple[str, str | bytes], ...] = ()
    peer: str = ""
    # grpc's auth_context(): e.g. {"x509_pem_cert": [b"..."], "transport_security_type": [b"ssl"]}
    auth_context: dict[str, list[bytes]] = field(default_factory=dict)

    def metadata_value(self, key: str) -> str | bytes | None:
        key = key.lower()
        for k, v in self.metadata:
            if k.lower() == key:
                return v
        return None


Identity = Hashable
Authenticate = Callable[[CallInfo, base_pb2.Node], Awaitable[Identity | None]]
GroupOf = Callable[[base_pb2.Node, Identity | None], str]


async def no_authentication(call: CallInfo, node: base_pb2.Node) -> Identity | None:
    """Development default: everyone is welcome and nobody has a proven identity."""
    return None


def group_by_node_id(node: base_pb2.Node, identity: Identity | None) -> str:
    """Default grouping: one group per node id (the runtime injects a smarter one)."""
    return node.id
