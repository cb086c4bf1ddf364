"""The floor must serve what our control plane serves: the same resources, byte for byte."""

from __future__ import annotations

import pytest

from benchmarks import expected, mesh, proxies, readiness, wire
from benchmarks.record import record
from benchmarks.targets import ControlPlaneTarget, FloorTarget

SPEC = mesh.MeshSpec(services=12, endpoints=2, virtual_services=3, destination_rules=4, namespaces=3)
GROUPS = 2
TARGETS = [FloorTarget, ControlPlaneTarget]


@pytest.mark.parametrize("make_target", TARGETS)
async def test_served_resources_are_the_translators_bytes(make_target) -> None:
    state = mesh.generate(SPEC)
    want = expected.translate_state(state, GROUPS)
    target = make_target()
    await target.start(state, want)
    try:
        await readiness.wait_serving(target.address, state.cluster_name(len(state.services) - 1))
        for index in range(GROUPS):
            ident = proxies.identity(index, GROUPS, SPEC.namespaces)
            got = await record(target.address, ident)
            for type_url in wire.TYPES:
                assert got[type_url] == want.by_group[ident.cluster][type_url], wire.SHORT[type_url]
    finally:
        await target.stop()
