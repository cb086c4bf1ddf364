"""Leader election on the Lease API (client-go semantics) against the API test double."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kubernetes import client

from controlplane.cluster.leader import LeaderElector, LeaseSettings
from tests.harness.wait import wait_for
from tests.kube_double.server import KubeApiDouble
from tests.replicas.cluster import LEASES, api_client_for

FAST = LeaseSettings(lease_duration=2.0, renew_deadline=1.5, retry_period=0.2)


@pytest.fixture
def electors(kube: KubeApiDouble) -> Iterator[list[LeaderElector]]:
    started = [LeaderElector(api_client_for(kube), f"replica-{i}", FAST) for i in range(3)]
    for elector in started:
        elector.start()
    try:
        yield started
    finally:
        for elector in started:
            elector.stop()


def leaders(electors: list[LeaderElector]) -> list[str]:
    return [e.identity for e in electors if e.is_leader]


def lease(kube: KubeApiDouble) -> dict:
    found = kube.get(LEASES, "istio-system", "istio-leader")
    assert found is not None
    return found


def parse_time(text: str) -> datetime:
    """RFC 3339 with six decimals, as the API server's MicroTime requires."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def watch_leaders(electors: list[LeaderElector], seconds: float) -> set[int]:
    """How many leaders there were at each moment of ``seconds``."""
    counts = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts.add(len(leaders(electors)))
        time.sleep(0.02)
    return counts


def test_exactly_one_leader_and_it_holds_the_lease(kube, electors):
    wait_for(lambda: len(leaders(electors)) == 1, deadline=5, message="a leader")
    assert watch_leaders(electors, 2.0) == {1}
    spec = lease(kube)["spec"]
    assert [spec["holderIdentity"]] == leaders(electors)
    assert spec["leaseDurationSeconds"] == 2
    assert spec["leaseTransitions"] == 0
    assert parse_time(spec["renewTime"]) <= datetime.now(UTC)


def test_a_crashed_leader_is_replaced_within_the_lease_duration(kube, electors):
    wait_for(lambda: len(leaders(electors)) == 1, deadline=5, message="a leader")
    old = next(e for e in electors if e.is_leader)
    old.stop(release=False)  # a crash: the lease is left to expire
    last_renewal = parse_time(lease(kube)["spec"]["renewTime"])
    others = [e for e in electors if e is not old]
    wait_for(lambda: len(leaders(others)) == 1, deadline=30, message="a new leader")
    assert watch_leaders(others, 1.0) == {1}
    spec = lease(kube)["spec"]
    assert spec["holderIdentity"] == leaders(others)[0] != old.identity
    assert spec["leaseTransitions"] == 1
    # Taken over only once the crashed leader's lease had run out, never before.
    taken = parse_time(spec["acquireTime"])
    assert (taken - last_renewal).total_seconds() >= spec["leaseDurationSeconds"] - 0.05


def test_a_leader_that_stops_hands_over_at_once(kube, electors):
    wait_for(lambda: len(leaders(electors)) == 1, deadline=5, message="a leader")
    old = next(e for e in electors if e.is_leader)
    old.stop()  # releases: empty holder, so nobody waits for the lease to expire
    released = lease(kube)["spec"]
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    others = [e for e in electors if e is not old]
    wait_for(lambda: len(leaders(others)) == 1, deadline=30, message="a new leader")
    assert lease(kube)["spec"]["leaseTransitions"] == 1


def test_the_leader_steps_down_when_it_cannot_renew(kube, electors):
    wait_for(lambda: len(leaders(electors)) == 1, deadline=5, message="a leader")
    changes: list[bool] = []
    leader = next(e for e in electors if e.is_leader)
    leader.subscribe(changes.append)
    kube.go_away("hang")  # requests are held unanswered
    try:
        # Within the renew deadline (and before anyone else could take the lease over).
        wait_for(lambda: not leaders(electors), deadline=30,
                 message="the leader stepped down")
    finally:
        kube.come_back()
    assert changes == [True, False]
    wait_for(lambda: len(leaders(electors)) == 1, deadline=30, message="a leader again")


def test_a_stale_write_is_a_conflict(kube, electors):
    """Optimistic concurrency: a PUT carrying an old resourceVersion loses (409)."""
    wait_for(lambda: len(leaders(electors)) == 1, deadline=5, message="a leader")
    api = client.CoordinationV1Api(api_client_for(kube))
    stale = lease(kube)
    wait_for(lambda: lease(kube)["metadata"]["resourceVersion"]
             != stale["metadata"]["resourceVersion"], deadline=2, message="a renewal")
    stale["spec"]["holderIdentity"] = "intruder"
    with pytest.raises(client.ApiException) as raised:
        api.replace_namespaced_lease("istio-leader", "istio-system", stale)
    assert raised.value.status == 409
    assert lease(kube)["spec"]["holderIdentity"] != "intruder"


def test_settings_refuse_a_renew_deadline_past_the_lease():
    with pytest.raises(ValueError, match="renew deadline"):
        LeaseSettings(lease_duration=2, renew_deadline=3, retry_period=1)
