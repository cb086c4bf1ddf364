"""Three control-plane replicas (processes on loopback) share one Kubernetes API test double:
one leader, which publishes the root; another takes over when it dies; 300 simulated proxies
spread over them all get a change; the proxies of a killed replica move to the others and
keep the same versions; a restart of every replica keeps the root."""

from __future__ import annotations

import socket
import ssl
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks import mesh
from benchmarks import plan as plans
from benchmarks.replicas import (
    GROUPS,
    api_with_mesh,
    apply_change,
    connect_all,
    leader,
    replica_name,
    resynced_after,
    spread_proxies,
    start_replica,
    stop_all,
    versions,
    wait_for_new_leader,
)
from controlplane.ca import load_ca_folder
from tests.harness.wait import wait_for
from tests.replicas.cluster import CONFIGMAPS, SECRETS

pytestmark = pytest.mark.slow

SPEC = mesh.MeshSpec(services=10, virtual_services=4, destination_rules=4, namespaces=3)
NAMES = {f"replica-{i}" for i in range(3)}


def root_configmaps(kube) -> dict[str, str]:
    return {c["metadata"]["namespace"]: c["data"]["root-cert.pem"]
            for c in kube.objects(CONFIGMAPS) if c["metadata"]["name"] == "istio-ca-root-cert"}


def test_one_leader_publishes_the_root_and_another_takes_over(tmp_path: Path) -> None:
    state = mesh.generate(SPEC)
    with api_with_mesh(state) as kube, ExitStack() as stack:
        replicas = [start_replica(stack, tmp_path, kube, i) for i in range(3)]
        holder = wait_for(lambda: leader(kube) in NAMES and leader(kube), message="a leader")
        # Every replica signs with the one root in the Secret, which the leader publishes in
        # every namespace (not Kubernetes' own).
        roots = {load_ca_folder(r.ca_dir, "cluster.local").bundle.pem for r in replicas}
        assert len(roots) == 1
        root = roots.pop()
        namespaces = {"istio-system", "default", *(state.namespace(i) for i in range(3))}
        wait_for(lambda: root_configmaps(kube) == dict.fromkeys(namespaces, root),
                 message="istio-ca-root-cert in every namespace")
        assert [s["metadata"]["name"] for s in kube.objects(SECRETS)] == ["istio-ca-secret"]

        index = replica_name(replicas, holder)
        assert index is not None
        replicas[index].kill()  # a crash: the lease is not released
        new = wait_for_new_leader(kube, holder, NAMES - {holder})
        lease = kube.get("/apis/coordination.k8s.io/v1/leases", "istio-system", "istio-leader")
        assert lease["spec"]["leaseTransitions"] == 1 and new != holder
        # The new leader does the singleton work: a namespace created now gets the root.
        kube.upsert("/api/v1/namespaces", {"metadata": {"name": "late"}})
        wait_for(lambda: root_configmaps(kube).get("late") == root, message="root in 'late'")

        survivor = replicas[replica_name(replicas, new)]
        survivor.stop()  # a clean stop releases the lease: the last one takes it at once
        last = wait_for_new_leader(kube, new, NAMES - {holder, new})
        assert last not in (holder, new)


async def test_proxies_spread_over_replicas_converge_and_move_without_new_versions(
    tmp_path: Path,
) -> None:
    plan = plans.build(SPEC, GROUPS, 0)
    assert plan.routing is not None and plan.added is not None
    with api_with_mesh(plan.initial) as kube, ExitStack() as stack:
        replicas = [start_replica(stack, tmp_path, kube, i) for i in range(3)]
        pools = await spread_proxies(replicas, 300, SPEC.namespaces)
        try:
            await connect_all(pools)
            assert [pool.config.proxies for pool in pools] == [100, 100, 100]
            # A change made through the API reaches all 300, whichever replica serves them.
            assert len(await apply_change(kube, pools, plan.routing)) == 300
            before = await versions(pools)
            assert all(v.keys() == {"CDS", "EDS", "LDS", "RDS"} and all(v.values())
                       for v in before.values())
            # Replicas agree: proxies of one group get the same versions from every replica.
            by_group: dict[int, set[str]] = {}
            for index, held in before.items():
                by_group.setdefault(index % GROUPS, set()).add(json_key(held))
            assert all(len(found) == 1 for found in by_group.values()), by_group

            killed = time.monotonic()
            replicas[1].kill()
            await resynced_after(pools[1], killed)
            after = await versions(pools)
            assert after == before  # moving to another replica changes no version
            reports = {p["proxy"]: p for pool in pools for p in await pool.report()}
            assert all(reports[i]["reconnects"] >= 1 for i in range(100, 200))
            assert all(reports[i]["reconnects"] == 0 for i in (*range(100), *range(200, 300)))
            # And the next change reaches every proxy, the moved ones included.
            assert len(await apply_change(kube, pools, plan.added)) == 300
        finally:
            await stop_all(pools)


def json_key(held: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(held.items()))


def tls_handshake(port: int, root_pem: str) -> str:
    """Connect to a replica's xDS TLS port trusting only ``root_pem``; the peer's subject."""
    context = ssl.create_default_context(cadata=root_pem)
    context.set_alpn_protocols(["h2"])
    with (socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
          context.wrap_socket(raw, server_hostname="127.0.0.1") as tls):
        return str(tls.getpeercert()["subjectAltName"])


def test_a_restart_of_every_replica_keeps_the_root(tmp_path: Path) -> None:
    state = mesh.generate(SPEC)
    with api_with_mesh(state) as kube, ExitStack() as before:
        first = [start_replica(before, tmp_path / "before", kube, i) for i in range(3)]
        ca = load_ca_folder(first[0].ca_dir, "cluster.local")
        issued = ca.issue_workload("default", "reviews")
        old_root = ca.bundle.pem
        before.close()
        # Every replica stopped; new ones start with empty CA folders (new pods).
        with ExitStack() as stack:
            second = [start_replica(stack, tmp_path / "after", kube, i) for i in range(3)]
            for replica in second:
                assert replica.ca_dir != first[0].ca_dir
                again = load_ca_folder(replica.ca_dir, "cluster.local")
                assert again.bundle.pem == old_root
                issued.cert.verify_directly_issued_by(again.signer.root)  # still verifies
                # A proxy holding the old root still trusts the restarted server.
                assert "127.0.0.1" in tls_handshake(replica.xds_tls_port, old_root)
