"""The bare gRPC connection-memory benchmark at a tiny scale: each conversation and handler
runs to the end and reports RSS and glibc's heap account. Never asserts on the figures."""

from __future__ import annotations

import pytest

from benchmarks.grpc_connection_memory import CONVERSATIONS, conversation, measure
from controlplane.server.heap import HeapTrimmer


def test_conversations() -> None:
    assert conversation("xds") == CONVERSATIONS["xds"]
    assert conversation("xds-delta") == CONVERSATIONS["xds-delta"]
    assert conversation("70000") == ((70000,),)


@pytest.mark.parametrize(("name", "handler"), [("xds", "read"), ("70000", "iterator")])
def test_a_tiny_run_reports_rss_and_the_heap(name: str, handler: str) -> None:
    row = measure(name, handler, (2, 6), mmap_threshold=0)
    assert isinstance(row["rss"], float)
    if HeapTrimmer().available:
        assert {"in_use", "free", "mapped"} <= row.keys()
