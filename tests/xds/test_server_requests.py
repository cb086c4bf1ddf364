"""A stream waiting for its next request holds none of the ones before (XdsServer reads with
``context.read()``: gRPC's own request iterator keeps the last message until the next one)."""

from __future__ import annotations

import asyncio
import sys

import grpc

from controlplane.xds.server import _requests


class _Context:
    """What ``_requests`` uses of a grpc.aio servicer context: ``read()``."""

    def __init__(self, messages: list[bytes]) -> None:
        self._messages = messages
        self.waiting = asyncio.Event()
        self._end = asyncio.Event()

    async def read(self):
        if self._messages:
            return self._messages.pop(0)
        self.waiting.set()
        await self._end.wait()
        return grpc.aio.EOF

    def end(self) -> None:
        self._end.set()


def test_a_request_is_not_held_while_the_next_is_awaited() -> None:
    async def run() -> None:
        request = b"\x0a" + b"n" * 70_000  # an EDS ACK's size on a 1,000-service mesh
        context = _Context([request])
        held = sys.getrefcount(request) - 1  # the list's reference, taken by read()
        requests = _requests(context)
        received = await anext(requests)
        assert received is request
        del received
        next_one = asyncio.ensure_future(anext(requests))
        await context.waiting.wait()  # the generator is parked in read()
        assert sys.getrefcount(request) == held, "the last request is still referenced"
        context.end()
        try:
            await next_one
        except StopAsyncIteration:
            pass
        else:
            raise AssertionError("EOF should end the requests")

    asyncio.run(asyncio.wait_for(run(), 10))


def test_requests_arrive_in_order_and_end_at_eof() -> None:
    async def run() -> list[bytes]:
        context = _Context([b"a", b"b", b"c"])
        context.end()
        return [request async for request in _requests(context)]

    assert asyncio.run(asyncio.wait_for(run(), 10)) == [b"a", b"b", b"c"]
