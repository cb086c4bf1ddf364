"""The gRPC server: ``envoy.service.ratelimit.v3.RateLimitService`` on grpc.aio."""

from __future__ import annotations

import logging

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from redis.exceptions import RedisError

from controlplane.ratelimit.service import BadRequest, RateLimitDecider

log = logging.getLogger("controlplane.ratelimit")
MAX_REQUEST_BYTES = 64 * 1024  # a request is a few descriptors


class _Servicer(rls_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, decider: RateLimitDecider) -> None:
        self._decider = decider
        self._failures = 0

    async def ShouldRateLimit(
        self, request: rls_pb2.RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> rls_pb2.RateLimitResponse:
        try:
            return await self._decider.should_rate_limit(request)
        except BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (RedisError, OSError) as exc:  # the counter store failed: Envoy's failure_mode_deny decides
            self._failures += 1
            if self._failures in (1, 10, 100) or self._failures % 1000 == 0:
                log.warning("rate limit counters unavailable (%d failures so far): %s", self._failures, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "rate limit counters unavailable")
        raise AssertionError("unreachable")


class RateLimitServer:
    def __init__(self, decider: RateLimitDecider) -> None:
        self.decider = decider
        self._server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_concurrent_streams", 1000),
        ])
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(_Servicer(decider), self._server)

    def add_port(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: a free port); the port bound."""
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return self._server.add_insecure_port(address)

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float = 1.0) -> None:
        await self._server.stop(grace)
        await self.decider.counters.close()

    async def wait(self) -> None:
        await self._server.wait_for_termination()
