"""ECDS (TypedExtensionConfig) on ADS, SotW and delta, driven through a stream double.

Filter configs are named by listeners (``config_discovery``) and asked for after them, like
routes: a response carries what was asked for that the client does not hold at that version,
waits for clusters to settle, never resends the listener, and a config the client holds is
never removed while it still subscribes to it (Envoy keeps the subscription while a listener,
draining ones included, uses the filter; a removal would disable the filter there).
"""

from __future__ import annotations

from envoy.config.core.v3 import extension_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2

from controlplane.xds import types
from controlplane.xds.resources import prepare
from tests.harness import xds_resources as r
from tests.harness.xds_double import (
    StreamDouble,
    ack,
    delta_ack,
    delta_request,
    nack,
    sotw_request,
)
from tests.xds.support import NODE, base_snapshot, connect_cds

ECDS = types.EXTENSION_CONFIG
ALLOW, DENY, UNUSED = "ns.rbac-allow", "ns.rbac-deny", "ns.unused"


def config(name: str, *policies: str) -> extension_pb2.TypedExtensionConfig:
    rbac = rbac_pb2.RBAC()
    if policies:
        rbac.rules.SetInParent()
        for p in policies:
            rbac.rules.policies[p].permissions.add(any=True)
            rbac.rules.policies[p].principals.add(any=True)
    out = extension_pb2.TypedExtensionConfig(name=name)
    out.typed_config.Pack(rbac)
    return out


def snapshot(allow: tuple[str, ...] = ("p1",), deny: tuple[str, ...] = (), *, cluster_timeout_ms: int = 1000):
    snap = base_snapshot(timeout_ms=cluster_timeout_ms)
    snap[ECDS] = [config(ALLOW, *allow), config(DENY, *deny), config(UNUSED)]
    return snap


def names(response) -> list[str]:
    if hasattr(response, "removed_resources"):
        return sorted(res.name for res in response.resources)
    return sorted(r.decode_resources(response))


async def sync_sotw(ads: StreamDouble):
    """CDS, EDS, LDS, then the two filter configs the listener names; returns the ECDS response."""
    await connect_cds(ads)
    ads.send(sotw_request(types.ENDPOINT, ["a", "b"]))
    ads.send(ack(await ads.recv(), ["a", "b"]))
    ads.send(sotw_request(types.LISTENER))
    ads.send(ack(await ads.recv()))
    ads.send(sotw_request(ECDS, [ALLOW, DENY]))
    ecds = await ads.recv()
    ads.send(ack(ecds, [ALLOW, DENY]))
    await ads.settle()
    return ecds


# --- SotW -------------------------------------------------------------------------------------


async def test_sotw_answers_exactly_the_names_asked_for(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        ecds = await sync_sotw(ads)
        assert ecds.type_url == ECDS and names(ecds) == [ALLOW, DENY]  # not the unused one
        assert ads.pending() == []


async def test_a_policy_change_sends_that_config_alone_and_never_the_listener(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        await sync_sotw(ads)
        lds_pushes = core.counters.pushes_by_type["LDS"]
        cache.set_snapshot("g", snapshot(deny=("block",)))
        update = await ads.recv()
        assert update.type_url == ECDS and names(update) == [DENY]
        decoded = r.decode_resources(update)[DENY]
        rbac = rbac_pb2.RBAC()
        assert decoded.typed_config.Unpack(rbac) and list(rbac.rules.policies) == ["block"]
        ads.send(ack(update, [ALLOW, DENY]))
        await ads.settle()
        assert ads.pending() == []
        assert core.counters.pushes_by_type["LDS"] == lds_pushes
        # The same content again: nothing goes out.
        cache.set_snapshot("g", snapshot(deny=("block",)))
        await ads.settle()
        assert ads.pending() == []


async def test_a_newly_named_config_is_sent_alone(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        await connect_cds(ads)
        ads.send(sotw_request(ECDS, [ALLOW]))
        first = await ads.recv()
        assert names(first) == [ALLOW]
        # A new listener names a second config: Envoy asks for both, gets the one it lacks.
        ads.send(sotw_request(ECDS, [ALLOW, DENY], nonce=first.nonce, version=first.version_info))
        second = await ads.recv()
        assert names(second) == [DENY]


async def test_configs_wait_for_changed_clusters_to_settle(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        await sync_sotw(ads)
        # One push changes a cluster (Envoy re-creates it and warms it on EDS) and a policy.
        cache.set_snapshot("g", snapshot(deny=("block",), cluster_timeout_ms=2000))
        cds = await ads.recv()
        assert cds.type_url == types.CLUSTER
        eds = await ads.recv()  # the changed cluster's endpoints, again
        assert eds.type_url == types.ENDPOINT
        await ads.settle()
        assert ads.pending() == []  # the config waits for the clusters ...
        ads.send(ack(eds, ["a", "b"]))
        ads.send(ack(cds))
        ecds = await ads.recv()  # ... then goes out
        assert ecds.type_url == ECDS and names(ecds) == [DENY]


async def test_sotw_nack_keeps_the_last_good_config_and_is_not_resent(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core) as ads:
        good = await sync_sotw(ads)
        cache.set_snapshot("g", snapshot(deny=("bad",)))
        bad = await ads.recv()
        ads.send(nack(bad, "bad RBAC", [ALLOW, DENY], accepted_version=good.version_info))
        await ads.settle()
        assert ads.pending() == []
        status = core.streams_status()[0]["types"]["ECDS"]
        assert status["last_nack"]["error"] == "bad RBAC"
        cache.set_snapshot("g", snapshot(deny=("fixed",)))
        fixed = await ads.recv()
        assert names(fixed) == [DENY]


async def test_the_single_type_ecds_service(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, type_url=ECDS) as ecds:
        ecds.send(sotw_request(ECDS, [DENY], node_id=NODE))
        response = await ecds.recv()
        assert response.type_url == ECDS and names(response) == [DENY]


# --- delta ------------------------------------------------------------------------------------


async def test_delta_sends_subscribed_configs_and_removes_names_that_never_existed(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(ECDS, [ALLOW, "ns.missing"], node_id=NODE))
        first = await ads.recv()
        assert names(first) == [ALLOW] and list(first.removed_resources) == ["ns.missing"]
        assert all(res.version for res in first.resources)
        ads.send(delta_ack(first))
        cache.set_snapshot("g", snapshot(allow=("p2",)))
        second = await ads.recv()
        assert names(second) == [ALLOW] and list(second.removed_resources) == []
        ads.send(delta_ack(second))
        await ads.settle()
        assert ads.pending() == []


async def test_delta_keeps_a_held_config_while_subscribed(cache, core):
    cache.set_snapshot("g", snapshot())
    async with StreamDouble(core, delta=True) as ads:
        ads.send(delta_request(ECDS, [ALLOW, DENY], node_id=NODE))
        ads.send(delta_ack(await ads.recv()))
        await ads.settle()
        # The listener no longer names DENY: it leaves the snapshot, but a draining listener of
        # the client may still use it, so no removal goes out while it is subscribed.
        snap = snapshot()
        snap[ECDS] = [config(ALLOW, "p1")]
        cache.set_snapshot("g", snap)
        await ads.settle()
        assert ads.pending() == []
        # Once the client lets it go, asking for it again finds nothing: now a removal.
        ads.send(delta_request(ECDS, [], [DENY]))
        await ads.settle()
        assert ads.pending() == []
        ads.send(delta_request(ECDS, [DENY]))
        gone = await ads.recv()
        assert names(gone) == [] and list(gone.removed_resources) == [DENY]
        ads.send(delta_ack(gone))
        # And it is sent again when it is back.
        cache.set_snapshot("g", snapshot(deny=("back",)))
        back = await ads.recv()
        assert names(back) == [DENY]


async def test_delta_reconnect_honours_what_the_client_holds(cache, core):
    snap = snapshot()
    cache.set_snapshot("g", snap)
    current = prepare(ECDS, config(ALLOW, "p1")).version
    async with StreamDouble(core, delta=True) as ads:
        # Envoy reconnects (e.g. after a control plane restart) holding ALLOW at the current
        # version and an old config the snapshot no longer has: nothing to send, nothing removed.
        ads.send(delta_request(ECDS, [ALLOW, "ns.old"], initial={ALLOW: current, "ns.old": "v0"}, node_id=NODE))
        await ads.settle()
        assert ads.pending() == []
        cache.set_snapshot("g", snapshot(allow=("p2",)))
        update = await ads.recv()
        assert names(update) == [ALLOW] and list(update.removed_resources) == []
