"""The gRPC face: ADS (SotW and delta) and the single-type CDS/EDS/LDS/RDS/SDS/ECDS services.

Handlers are registered as generic handlers whose serializers are the identity: streams write
bytes framed from pre-serialized resources, so per-stream work is joining bytes, and are given
each request's bytes, which bound it before it is parsed and make a SotW ACK's subscription a
slice (see shared.subscription_key).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence

import grpc

from controlplane.xds import types
from controlplane.xds.auth import (
    Authenticate,
    CallInfo,
    GroupOf,
    PermissionDenied,
    Unauthenticated,
    group_by_node_id,
    no_authentication,
)
from controlplane.xds.cache import SnapshotCache
from controlplane.xds.callbacks import XdsCallbacks
from controlplane.xds.core import XdsCore
from controlplane.xds.limits import Refused, XdsLimits

log = logging.getLogger(__name__)

# service -> (SotW method, delta method, type URL or None for ADS)
SERVICES: dict[str, tuple[str, str, str | None]] = {
    "envoy.service.discovery.v3.AggregatedDiscoveryService": (
        "StreamAggregatedResources",
        "DeltaAggregatedResources",
        None,
    ),
    "envoy.service.cluster.v3.ClusterDiscoveryService": (
        "StreamClusters",
        "DeltaClusters",
        types.CLUSTER,
    ),
    "envoy.service.endpoint.v3.EndpointDiscoveryService": (
        "StreamEndpoints",
        "DeltaEndpoints",
        types.ENDPOINT,
    ),
    "envoy.service.listener.v3.ListenerDiscoveryService": (
        "StreamListeners",
        "DeltaListeners",
        types.LISTENER,
    ),
    "envoy.service.route.v3.RouteDiscoveryService": ("StreamRoutes", "DeltaRoutes", types.ROUTE),
    "envoy.service.secret.v3.SecretDiscoveryService": (
        "StreamSecrets",
        "DeltaSecrets",
        types.SECRET,
    ),
    "envoy.service.extension.v3.ExtensionConfigDiscoveryService": (
        "StreamExtensionConfigs",
        "DeltaExtensionConfigs",
        types.EXTENSION_CONFIG,
    ),
}

# The receive size comes from XdsLimits.max_request_bytes (see XdsLimits.grpc_options).
DEFAULT_OPTIONS: tuple[tuple[str, object], ...] = (
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
)


async def _requests(context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    """The stream's requests, read with ``context.read()``. gRPC's own request iterator is an
    async generator over ``read()`` whose frame keeps the last message until the next one
    arrives: an idle Envoy's last request (an EDS ACK naming every cluster, ~70 KB on a
    1,000-service mesh) stayed in memory per stream (benchmarks/grpc_connection_memory.py:
    111 KB per connection with gRPC's iterator, 42 KB with this)."""
    while True:
        request = await context.read()
        if request is grpc.aio.EOF:
            return
        yield request
        del request  # not held while waiting for the next one


def call_info(context: grpc.aio.ServicerContext) -> CallInfo:
    metadata = tuple((m.key, m.value) for m in (context.invocation_metadata() or ()))
    auth = {k: list(v) for k, v in (context.auth_context() or {}).items()}
    return CallInfo(metadata=metadata, peer=context.peer() or "", auth_context=auth)


class XdsServer:
    """Owns a grpc.aio server. add_port() any number of times, then start(); stop() to end."""

    def __init__(
        self,
        cache: SnapshotCache,
        *,
        group_of: GroupOf = group_by_node_id,
        authenticate: Authenticate = no_authentication,
        callbacks: XdsCallbacks | None = None,
        identifier: str = "controlplane",
        options: Sequence[tuple[str, object]] = DEFAULT_OPTIONS,
        limits: XdsLimits | None = None,
    ) -> None:
        limits = limits or XdsLimits()
        self.core = XdsCore(
            cache,
            group_of=group_of,
            authenticate=authenticate,
            callbacks=callbacks,
            identifier=identifier,
            limits=limits,
        )
        self.cache = cache
        # Options given win over the limits' (gRPC takes the last value of a repeated key).
        self._server = grpc.aio.server(options=[*limits.grpc_options(), *options])
        self._server.add_generic_rpc_handlers(tuple(self._handlers()))
        self.ports: list[int] = []
        self._started = False

    # --- lifecycle ----------------------------------------------------------------------------

    def add_port(
        self, host: str, port: int, credentials: grpc.ServerCredentials | None = None
    ) -> int:
        """Listen on host:port (0 = any free port), plaintext or with TLS; returns the port."""
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if credentials is None:
            bound = self._server.add_insecure_port(address)
        else:
            bound = self._server.add_secure_port(address, credentials)
        if bound == 0:
            raise OSError(f"cannot listen on {address}")
        self.ports.append(bound)
        return bound

    async def start(self) -> None:
        await self._server.start()
        self._started = True
        log.info("xds server listening on ports %s", self.ports)

    async def stop(self, grace: float | None = 1.0) -> None:
        """End every stream (proxies reconnect elsewhere), then stop after `grace` seconds."""
        self.core.close_all()
        if self._started:
            await self._server.stop(grace)
            self._started = False

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()

    @property
    def grpc_server(self) -> grpc.aio.Server:
        """The underlying server, to register other services on the same ports (as istiod
        serves certificate signing next to xDS)."""
        return self._server

    # --- what operators and metrics read ------------------------------------------------------

    @property
    def counters(self):
        return self.core.counters

    def streams_status(self) -> list[dict[str, object]]:
        return self.core.streams_status()

    def sync_statuses(
        self, stream_ids: Iterable[int], *, settled_only: bool = False
    ) -> list[dict[str, object]]:
        return self.core.sync_statuses(stream_ids, settled_only=settled_only)

    def recent_nacks(self):
        return self.core.recent_nacks()

    # --- gRPC plumbing ------------------------------------------------------------------------

    def _handlers(self):
        for service, (sotw_method, delta_method, type_url) in SERVICES.items():
            methods = {
                sotw_method: grpc.stream_stream_rpc_method_handler(
                    self._sotw_behaviour(type_url), response_serializer=None
                ),
                delta_method: grpc.stream_stream_rpc_method_handler(
                    self._delta_behaviour(type_url), response_serializer=None
                ),
            }
            yield grpc.method_handlers_generic_handler(service, methods)

    # Handlers write with ``context.write`` rather than yield: gRPC's loop over a handler's
    # generator keeps the last message it took until the next one, and a response is unique
    # to its stream (its nonce), so each idle stream held its last response (a whole RDS or
    # CDS set: most of what a connected proxy cost).
    def _sotw_behaviour(self, type_url: str | None):
        async def behaviour(_: AsyncIterator, context: grpc.aio.ServicerContext) -> None:
            await self._serve(self.core.sotw(_requests(context), call_info(context), type_url),
                              context)

        return behaviour

    def _delta_behaviour(self, type_url: str | None):
        async def behaviour(_: AsyncIterator, context: grpc.aio.ServicerContext) -> None:
            await self._serve(self.core.delta(_requests(context), call_info(context), type_url),
                              context)

        return behaviour

    async def _serve(self, responses: AsyncIterator[bytes], context: grpc.aio.ServicerContext):
        """Write the stream's responses; map the authentication hook's verdicts and the
        limits' refusals to gRPC status codes. Each is counted (Counters.refused_by_reason)
        and reported to the callbacks' on_refused, which logs them in aggregate: a flood is
        not a log line per stream."""
        status: tuple[grpc.StatusCode, str] | None = None
        try:
            async for response in responses:
                await context.write(response)
                del response  # not held while the stream waits for its next response
        except PermissionDenied as error:
            status = (grpc.StatusCode.PERMISSION_DENIED, str(error) or "permission denied")
        except Unauthenticated as error:
            status = (grpc.StatusCode.UNAUTHENTICATED, str(error) or "unauthenticated")
        except Refused as error:
            status = (grpc.StatusCode[error.code], str(error))
        if status is not None:
            # Outside the except: gRPC keeps the AbortError it raises, which would otherwise
            # chain to the stream's exception and, by its traceback, to everything the
            # stream held (its subscriptions, its last response).
            log.debug("xds stream from %s ended: %s %s", context.peer(), status[0].name, status[1])
            await context.abort(*status)
