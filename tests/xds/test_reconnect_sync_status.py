"""A proxy that reconnects holding exactly what the server has (after a control-plane restart,
versions being content hashes) is sent nothing, and shows as in sync, not as never sent to."""

from __future__ import annotations

from controlplane.xds import types
from tests.harness.xds_double import StreamDouble, delta_request, sotw_request
from tests.xds.support import NODE, base_snapshot


async def test_delta_reconnect_with_everything_held_is_synced_without_a_response(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(types.CLUSTER, node_id=NODE))
        first = await ads.recv()
    held = {res.name: res.version for res in first.resources}
    async with StreamDouble(core, delta=True) as again:
        again.send(delta_request(types.CLUSTER, initial=held, node_id=NODE))
        await again.settle()
        assert again.pending() == []  # nothing re-sent
        (status,) = core.streams_status()
        cds = status["types"]["CDS"]
        assert cds["version_sent"] == cds["version_acked"] == first.system_version_info
        assert cds["pending_ack"] is False


async def test_sotw_reconnect_with_the_same_version_is_synced_without_a_response(cache, core):
    cache.set_snapshot("g", base_snapshot())
    async with StreamDouble(core) as ads:
        ads.send(sotw_request(types.CLUSTER, node_id=NODE))
        first = await ads.recv()
    async with StreamDouble(core) as again:
        again.send(sotw_request(types.CLUSTER, version=first.version_info, node_id=NODE))
        await again.settle()
        assert again.pending() == []
        (status,) = core.streams_status()
        cds = status["types"]["CDS"]
        assert cds["version_sent"] == cds["version_acked"] == first.version_info
