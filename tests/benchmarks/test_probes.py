"""Probes match only the content that carries the change: no false convergence."""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2

from benchmarks import mesh, plan, wire
from benchmarks.probes import Probe

SPEC = mesh.MeshSpec(services=6, endpoints=2, virtual_services=2, destination_rules=3, namespaces=2)


def test_address_pattern_does_not_match_a_longer_address() -> None:
    probe = Probe("p", wire.ENDPOINT, "x", contains=(wire.endpoint_address("10.0.0.3"),))
    longer = address_pb2.SocketAddress(address="10.0.0.30", port_value=8080).SerializeToString()
    exact = address_pb2.SocketAddress(address="10.0.0.3", port_value=8080).SerializeToString()
    assert not probe.matches(longer)
    assert probe.matches(exact)


def test_every_probe_of_the_plan_fails_before_and_holds_after_its_change() -> None:
    p = plan.build(SPEC, groups=2, churn_changes=4)
    group = next(iter(p.initial_expected.by_group))
    eds_before = p.initial_expected.by_group[group][wire.ENDPOINT]
    for step in p.churn:
        (probe,) = step.change.probes
        assert probe.matches(step.assignments[probe.name])
        assert not probe.matches(eds_before[probe.name])
    (routing,) = p.routing.change.probes
    rds_before = p.initial_expected.by_group[group][wire.ROUTE][routing.name]
    assert not routing.matches(rds_before)
    assert routing.matches(p.routing.expected.by_group[group][wire.ROUTE][routing.name])
    for probe in p.added.change.probes:
        after = p.added.expected.by_group[group][probe.type_url][probe.name]
        assert probe.matches(after)
        assert probe.name not in p.routing.expected.by_group[group][probe.type_url] or not probe.matches(
            p.routing.expected.by_group[group][probe.type_url][probe.name])


def test_probe_survives_the_json_trip_to_the_client() -> None:
    probe = Probe("p", wire.ROUTE, "8080", contains=(b"\x00\xffa",), absent=(b"b",))
    assert Probe.from_json(probe.to_json()) == probe
