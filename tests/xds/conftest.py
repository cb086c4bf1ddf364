from __future__ import annotations

import pytest

from controlplane.xds import SnapshotCache, XdsCore


@pytest.fixture
def cache() -> SnapshotCache:
    return SnapshotCache()


@pytest.fixture
def core(cache: SnapshotCache) -> XdsCore:
    # One group for every proxy unless a test injects its own grouping.
    return XdsCore(cache, group_of=lambda node, identity: "g")


# The shared harness fixtures (other test folders import them the same way).
from tests.harness.fixtures import envoy_factory, upstream_factory, xds_server  # noqa: F401
