"""Envoy's xDS streams, proxied from a Unix socket to the control plane. Every stream Envoy
opens becomes one upstream stream carrying ``authorization: Bearer <token>``, the token read
from its file at that moment; messages pass through as bytes. When the control plane goes
away the downstream stream ends UNAVAILABLE: Envoy reconnects to the socket (it keeps serving
its last config meanwhile) and the new stream reaches the control plane once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from controlplane.agent.token import TokenError

log = logging.getLogger("controlplane.agent.xds")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # what a full push to one proxy may weigh
_PASS_THROUGH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)


class XdsProxy:
    def __init__(
        self,
        socket_path: str,
        upstream: tuple[str, int],
        credentials: grpc.ChannelCredentials | None,
        token: Callable[[], str] | None,
        *,
        server_name: str = "",
        socket_owner: tuple[int, int] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.upstream = upstream
        self.credentials = credentials
        self.token = token
        self.server_name = server_name
        self.socket_owner = socket_owner
        self.upstream_streams = 0  # streams opened towards the control plane
        self.upstream_failures = 0
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._channel_address = ""

    async def _upstream_channel(self) -> grpc.aio.Channel:
        """A channel to the control plane's current address. The name is resolved here, as the
        system resolver does (``/etc/hosts`` first): gRPC's own resolver would first wait for
        DNS servers a pod may not reach. Re-resolved after a failed stream."""
        host, port = self.upstream
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, address = infos[0][0], infos[0][4][0]
        target = f"ipv6:[{address}]:{port}" if family == socket.AF_INET6 else f"ipv4:{address}:{port}"
        if self._channel is not None and target == self._channel_address:
            return self._channel
        if self._channel is not None:
            await self._channel.close(grace=1.0)
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        if self.credentials is not None:
            name = self.server_name or host
            self._channel = grpc.aio.secure_channel(
                target, self.credentials, options=[*options, ("grpc.ssl_target_name_override", name),
                                                   ("grpc.default_authority", name)])
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._channel_address = target
        return self._channel

    async def start(self) -> None:
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        self._server = grpc.aio.server(options=options)
        self._server.add_generic_rpc_handlers((_PassThrough(self._stream),))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        old_umask = os.umask(0o177)  # the socket is created 0600: only the proxy user connects
        try:
            if not self._server.add_insecure_port(f"unix:{self.socket_path}"):
                raise OSError(f"cannot listen on {self.socket_path}")
        finally:
            os.umask(old_umask)
        await self._server.start()
        if self.socket_owner is not None:
            os.chown(self.socket_path, *self.socket_owner)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.5)
        if self._channel is not None:
            await self._channel.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def _stream(self, method: str, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        try:
            channel = await self._upstream_channel()
        except OSError as error:
            self.upstream_failures += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"control plane {self.upstream[0]}: {error}")
        metadata: tuple[tuple[str, str], ...] = ()
        if self.token is not None:
            try:
                metadata = (("authorization", f"Bearer {self.token()}"),)
            except TokenError as error:  # the token file is missing or unreadable: retry later
                log.warning("no credential for the control plane: %s", error)
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"agent has no credential: {error}")
        call = channel.stream_stream(method)(metadata=metadata)
        self.upstream_streams += 1

        async def upwards() -> None:
            # The upstream's own failure ends the stream below; a write after it has nowhere to go.
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                async for message in requests:
                    await call.write(message)
                await call.done_writing()

        pump = asyncio.create_task(upwards())
        try:
            async for message in call:
                await context.write(message)
            code, details = await call.code(), await call.details()
        except grpc.aio.AioRpcError as error:
            code, details = error.code(), error.details() or ""
        finally:
            pump.cancel()
            call.cancel()
        if code != grpc.StatusCode.OK:
            self.upstream_failures += 1
            log.info("control plane stream ended (%s); Envoy will reconnect", code.name)
            await context.abort(code if code in _PASS_THROUGH_CODES else grpc.StatusCode.UNAVAILABLE,
                                f"control plane: {details}"[:1000])


class _PassThrough(grpc.GenericRpcHandler):
    """Every xDS method (ADS and the per-type services), bytes in and out."""

    def __init__(self, stream: Callable[..., Any]) -> None:
        self._stream = stream

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if not method.startswith("/envoy.service."):
            return None
        return grpc.stream_stream_rpc_method_handler(functools.partial(self._stream, method))
