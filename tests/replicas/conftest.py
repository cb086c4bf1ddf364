from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube_double.server import KubeApiDouble
from tests.replicas.cluster import LeaderFlag, cluster_double


@pytest.fixture
def kube() -> Iterator[KubeApiDouble]:
    with cluster_double() as double:
        yield double


@pytest.fixture
def leading() -> LeaderFlag:
    """Not leading until the test says so."""
    return LeaderFlag(False)
