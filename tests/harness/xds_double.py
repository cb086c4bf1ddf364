"""A stream double: drive the xDS server's stream logic with requests, no network.

async with StreamDouble(core) as ads:
    ads.send(sotw_request(types.CLUSTER))
    response = await ads.recv()
    ads.send(ack(response))
    await ads.settle()          # the server processed everything and has nothing to send
    assert ads.pending() == []
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Self

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from controlplane.xds.auth import CallInfo
from controlplane.xds.core import XdsCore
from controlplane.xds.stream import DELTA, SOTW, Stream

_END = object()


def node(node_id: str = "sidecar~127.0.0.1~app.default~default.svc.cluster.local") -> base_pb2.Node:
    return base_pb2.Node(id=node_id, cluster="app.default")


def sotw_request(
    type_url: str,
    names: Iterable[str] = (),
    *,
    nonce: str = "",
    version: str = "",
    node_id: str | None = None,
    error: str | None = None,
) -> discovery_pb2.DiscoveryRequest:
    request = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=list(names), response_nonce=nonce, version_info=version
    )
    if node_id is not None:
        request.node.CopyFrom(node(node_id))
    if error is not None:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


def ack(
    response: discovery_pb2.DiscoveryResponse, names: Iterable[str] = ()
) -> discovery_pb2.DiscoveryRequest:
    return sotw_request(
        response.type_url, names, nonce=response.nonce, version=response.version_info
    )


def nack(
    response: discovery_pb2.DiscoveryResponse,
    error: str,
    names: Iterable[str] = (),
    accepted_version: str = "",
) -> discovery_pb2.DiscoveryRequest:
    return sotw_request(
        response.type_url, names, nonce=response.nonce, version=accepted_version, error=error
    )


def delta_request(
    type_url: str,
    subscribe: Iterable[str] = (),
    unsubscribe: Iterable[str] = (),
    *,
    nonce: str = "",
    initial: dict[str, str] | None = None,
    node_id: str | None = None,
    error: str | None = None,
) -> discovery_pb2.DeltaDiscoveryRequest:
    request = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=list(subscribe),
        resource_names_unsubscribe=list(unsubscribe),
        response_nonce=nonce,
        initial_resource_versions=initial or {},
    )
    if node_id is not None:
        request.node.CopyFrom(node(node_id))
    if error is not None:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


def delta_ack(
    response: discovery_pb2.DeltaDiscoveryResponse,
) -> discovery_pb2.DeltaDiscoveryRequest:
    return delta_request(response.type_url, nonce=response.nonce)


class StreamDouble:
    """One client stream against XdsCore; responses are decoded into protobuf messages."""

    def __init__(
        self,
        core: XdsCore,
        *,
        delta: bool = False,
        call: CallInfo | None = None,
        type_url: str | None = None,
        read_responses: bool = True,
    ) -> None:
        self.core = core
        self.delta = delta
        self.stream: Stream = core.open_stream(
            DELTA if delta else SOTW, call or CallInfo(), type_url
        )
        self._requests: asyncio.Queue = asyncio.Queue()
        self._responses: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._responses_iter = None
        self.error: BaseException | None = None
        self.read_responses = read_responses

    async def _request_source(self):
        while True:
            item = await self._requests.get()
            if item is _END:
                return
            yield item

    async def __aenter__(self) -> Self:
        self._responses_iter = self.stream.run(self._request_source())
        if self.read_responses:
            self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _collect(self) -> None:
        decode = (
            discovery_pb2.DeltaDiscoveryResponse if self.delta else discovery_pb2.DiscoveryResponse
        ).FromString
        try:
            async for raw in self._responses_iter:
                await self._responses.put(decode(raw))
        except Exception as error:  # noqa: BLE001 - surfaced by recv()/settle()/ended()
            self.error = error
        finally:
            await self._responses.put(_END)

    def send(self, request) -> None:
        self._requests.put_nowait(request)

    async def recv(self, timeout: float = 10.0):
        """The next response (fails the test if none comes within a generous deadline)."""
        item = await asyncio.wait_for(self._responses.get(), timeout)
        if item is _END:
            raise AssertionError(f"stream ended: {self.error!r}")
        return item

    async def settle(self, deadline: float = 10.0) -> None:
        """Wait until the server consumed every request sent and has nothing more to send now."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while True:
            for _ in range(3):
                await asyncio.sleep(0)
            if self.error is not None:
                raise AssertionError(f"stream failed: {self.error!r}")
            if self.stream.closed:
                return
            if self._requests.empty() and self.stream.idle and not self.stream._wake.is_set():
                return
            if loop.time() > end:
                raise AssertionError("stream did not settle")
            await asyncio.sleep(0.001)

    async def ended(self, deadline: float = 10.0) -> BaseException | None:
        """Wait for the server to end the stream; returns the error it ended with, if any."""
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), deadline)
        return self.error

    def pending(self) -> list:
        """Responses received but not yet taken by recv()."""
        items = []
        while not self._responses.empty():
            item = self._responses.get_nowait()
            if item is not _END:
                items.append(item)
        return items

    async def close(self) -> None:
        self._requests.put_nowait(_END)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001, S110 - ending anyway
                pass
        elif self._responses_iter is not None:
            await self._responses_iter.aclose()
