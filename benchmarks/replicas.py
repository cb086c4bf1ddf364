"""Replicas of the control plane sharing one Kubernetes API (the test double, in a thread):
leader failover, a proxy's reconnection to another replica, and convergence of a change with
1, 2 and 3 replicas serving the same simulated proxies.

    python -m benchmarks.replicas [--proxies 300] [--services 30] [--replicas 1,2,3]

Each replica is ``controlplane serve --kubernetes`` on its own loopback ports; the proxies
(``load_client``) are spread evenly, each with every replica's address behind its own
(gRPC ``pick_first`` over ``ipv4:A,B,C``), as a Service spreads connections: when its replica
dies a proxy reconnects to the next one. The leader holds the Lease
``istio-system/istio-leader`` (short timings here: ``FAST_LEASE``).

The machinery is shared with ``tests/replicas/`` (which asserts behaviour, not speed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchmarks import mesh
from benchmarks import plan as plans
from benchmarks.clients import ClientConfig, ClientPool
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.wait import wait_for
from tests.kube_double.server import KubeApiDouble
from tests.replicas.cluster import (
    DESTINATION_RULES,
    LEASES,
    NAMESPACES,
    PODS,
    SERVICES,
    SLICES,
    VIRTUAL_SERVICES,
    cluster_double,
    kubeconfig,
)

LEASE_SECONDS = 2.0
FAST_LEASE = ("--lease-duration", str(LEASE_SECONDS), "--lease-renew-deadline", "1.5",
              "--lease-retry-period", "0.2")
# Every simulated proxy connects from 127.0.0.1, with no credential: lift the per-address cap
# (100 streams) meant for real proxies, each on its own address.
SIMULATED_PROXIES = ("--xds-max-streams-per-peer", "0")
_PATHS = {"Service": SERVICES, "Pod": PODS, "EndpointSlice": SLICES,
          "DestinationRule": DESTINATION_RULES, "VirtualService": VIRTUAL_SERVICES}
GROUPS = 4


# --- the API and the replicas -------------------------------------------------------------


def upsert_documents(kube: KubeApiDouble, documents: Sequence[dict[str, Any]]) -> None:
    for document in documents:
        kube.upsert(_PATHS[document["kind"]], document)


@contextmanager
def api_with_mesh(state: mesh.MeshState) -> Iterator[KubeApiDouble]:
    """The API test double, serving the mesh's objects (and their namespaces)."""
    with cluster_double() as kube:
        for index in range(state.spec.namespaces):
            kube.upsert(NAMESPACES, {"metadata": {"name": state.namespace(index)}})
        upsert_documents(kube, list(mesh.documents(state)))
        yield kube


def start_replica(stack: ExitStack, workdir: Path, kube: KubeApiDouble, index: int,
                  *extra: str) -> ServedControlPlane:
    """One replica, stopped by ``stack``; its CA folder is its own (filled from the Secret)."""
    home = workdir / f"replica-{index}"
    (home / "config").mkdir(parents=True, exist_ok=True)
    config = kubeconfig(workdir / "kubeconfig", kube.url)
    return stack.enter_context(served_control_plane(
        home, home / "config", "--kubernetes", "--kubeconfig", str(config),
        "--replica-name", f"replica-{index}", *FAST_LEASE, *SIMULATED_PROXIES, *extra,
    ))  # fmt: skip


def leader(kube: KubeApiDouble) -> str:
    lease = kube.get(LEASES, "istio-system", "istio-leader")
    return (lease or {}).get("spec", {}).get("holderIdentity", "")


def replica_name(replicas: Sequence[ServedControlPlane], holder: str) -> int | None:
    """The index of the replica holding the lease (names are ``replica-<index>``)."""
    if not holder.startswith("replica-"):
        return None
    index = int(holder.removeprefix("replica-"))
    return index if index < len(replicas) else None


def target(replicas: Sequence[ServedControlPlane], primary: int) -> str:
    """Every replica's plaintext xDS address, ``primary`` first (gRPC pick_first)."""
    order = [*range(primary, len(replicas)), *range(primary)]
    ports = [replicas[i].xds_plaintext_port for i in order]
    return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)


# --- proxies ------------------------------------------------------------------------------


async def spread_proxies(replicas: Sequence[ServedControlPlane], proxies: int,
                         namespaces: int) -> list[ClientPool]:
    """``proxies`` simulated sidecars in one client process per replica, evenly spread."""
    pools = []
    share, extra = divmod(proxies, len(replicas))
    first = 0
    for index in range(len(replicas)):
        count = share + (1 if index < extra else 0)
        pool = ClientPool(ClientConfig(target(replicas, index), count, GROUPS, namespaces,
                                       first=first))
        await pool.start()
        pools.append(pool)
        first += count
    return pools


async def connect_all(pools: Sequence[ClientPool], timeout: float = 120) -> None:
    for pool in pools:
        await pool.connect()
    for pool in pools:
        if not await pool.wait_synced(timeout):
            raise AssertionError(f"only {len(pool.synced)} of {pool.config.proxies} synced")


async def stop_all(pools: Sequence[ClientPool]) -> None:
    for pool in pools:
        await pool.stop()


async def apply_change(kube: KubeApiDouble, pools: Sequence[ClientPool],
                       change: plans.StateChange, timeout: float = 120) -> list[float]:
    """Make the change through the API; seconds until each proxy ACKed it."""
    probe_ids = [p.id for p in change.change.probes]
    for pool in pools:
        await pool.register(change.change.id, list(change.change.probes))
    started = time.monotonic()
    for index in change.changed:
        upsert_documents(kube, mesh.service_documents(change.state, index))
    for pool in pools:
        if not await pool.wait_converged(probe_ids, timeout):
            raise AssertionError(f"{len(pool.converged(probe_ids))} of "
                                 f"{pool.config.proxies} proxies got change {change.change.id}")
    return sorted(acked - started for pool in pools
                  for _, acked in pool.converged(probe_ids).values())


async def versions(pools: Sequence[ClientPool]) -> dict[int, dict[str, str]]:
    """Proxy index -> the version of each type it last ACKed."""
    return {p["proxy"]: p["versions"] for pool in pools for p in await pool.report()}


async def resynced_after(pool: ClientPool, since: float, timeout: float = 120) -> list[float]:
    """Seconds from ``since`` until each proxy of ``pool`` was synced again (elsewhere)."""
    moved = await pool._until(
        lambda: all(acked > since for _, acked, _ in pool.synced.values()), timeout, "resynced"
    )
    if not moved:
        waiting = sum(1 for _, acked, _ in pool.synced.values() if acked <= since)
        raise AssertionError(f"{waiting} proxies did not reconnect to another replica")
    return sorted(acked - since for _, acked, _ in pool.synced.values())


def wait_for_new_leader(kube: KubeApiDouble, old: str, live: set[str]) -> str:
    return wait_for(lambda: (h := leader(kube)) in live and h != old and h,
                    message=f"a leader other than {old}")


# --- the benchmark ------------------------------------------------------------------------


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    quantiles = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {"p50_ms": round(quantiles[49], 1), "p99_ms": round(quantiles[98], 1),
            "max_ms": round(max(ms), 1), "proxies": len(ms)}


async def convergence(workdir: Path, spec: mesh.MeshSpec, count: int, proxies: int) -> dict:
    plan = plans.build(spec, GROUPS, 0)
    assert plan.routing is not None
    with api_with_mesh(plan.initial) as kube, ExitStack() as stack:
        replicas = [start_replica(stack, workdir / f"r{count}", kube, i) for i in range(count)]
        pools = await spread_proxies(replicas, proxies, spec.namespaces)
        try:
            await connect_all(pools)
            return _summary(await apply_change(kube, pools, plan.routing))
        finally:
            await stop_all(pools)


async def failover(workdir: Path, spec: mesh.MeshSpec, proxies: int) -> dict:
    """Kill (SIGKILL) the leader of three replicas: how long until another leads, and until
    the proxies it served are synced on the others."""
    plan = plans.build(spec, GROUPS, 0)
    with api_with_mesh(plan.initial) as kube, ExitStack() as stack:
        replicas = [start_replica(stack, workdir / "failover", kube, i) for i in range(3)]
        names = {f"replica-{i}" for i in range(3)}
        holder = wait_for(lambda: leader(kube) in names and leader(kube), message="a leader")
        index = replica_name(replicas, holder)
        assert index is not None
        pools = await spread_proxies(replicas, proxies, spec.namespaces)
        try:
            await connect_all(pools)
            before = await versions(pools)
            killed = time.monotonic()
            replicas[index].kill()
            await asyncio.to_thread(wait_for_new_leader, kube, holder, names - {holder})
            leader_seconds = time.monotonic() - killed
            reconnect = await resynced_after(pools[index], killed)
            after = await versions(pools)
            # A clean stop (SIGTERM: a rolling update) releases the lease.
            second = leader(kube)
            second_index = replica_name(replicas, second)
            assert second_index is not None
            stopped = time.monotonic()
            replicas[second_index].process.send_signal(signal.SIGTERM)  # not waiting for exit
            await asyncio.to_thread(wait_for_new_leader, kube, second, names - {holder, second})
            handover_seconds = time.monotonic() - stopped
            await asyncio.to_thread(replicas[second_index].stop)
            return {
                "lease_duration_s": LEASE_SECONDS,
                "leader_failover_ms": round(leader_seconds * 1000, 1),
                "leader_handover_on_clean_stop_ms": round(handover_seconds * 1000, 1),
                "proxy_reconnection": _summary(reconnect),
                "versions_unchanged": before == after,
            }
        finally:
            await stop_all(pools)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    spec = mesh.MeshSpec(services=args.services, virtual_services=args.services // 5,
                         destination_rules=args.services // 5, namespaces=5)
    results: dict[str, Any] = {"proxies": args.proxies, "services": args.services}
    with tempfile.TemporaryDirectory(prefix="replicas-") as tmp:
        for count in args.replicas:
            results[f"convergence_{count}_replicas"] = await convergence(
                Path(tmp), spec, count, args.proxies)
            print(json.dumps({f"{count} replicas": results[f"convergence_{count}_replicas"]}),
                  flush=True)
        results["failover"] = await failover(Path(tmp), spec, args.proxies)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxies", type=int, default=300)
    parser.add_argument("--services", type=int, default=30)
    parser.add_argument("--replicas", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 2, 3])
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
