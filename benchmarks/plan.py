"""The sequence of mesh states a session goes through, computed once and shared by every
target, with the probes that detect each change and the floor's pre-serialized resources.

    state0 --churn x N--> stateN --weights--> state_routing --new service--> state_added

Each probe is checked against the content before its change: a probe that the old content
already satisfies would allow false convergence, so building the plan fails instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks import expected as exp
from benchmarks import mesh, wire
from benchmarks.probes import Change, Probe

NEW_WEIGHTS = (37, 63)


@dataclass(frozen=True)
class ChurnStep:
    state: mesh.MeshState
    index: int
    change: Change
    assignments: dict[str, bytes]  # the service's ClusterLoadAssignments after the step


@dataclass(frozen=True)
class StateChange:
    state: mesh.MeshState
    changed: list[int]
    change: Change
    expected: exp.Expected


@dataclass(frozen=True)
class Plan:
    spec: mesh.MeshSpec
    groups: int
    initial: mesh.MeshState
    initial_expected: exp.Expected
    churn: tuple[ChurnStep, ...]
    routing: StateChange | None
    added: StateChange | None


def build(spec: mesh.MeshSpec, groups: int, churn_changes: int, *, full: bool = True) -> Plan:
    state = initial = mesh.generate(spec)
    initial_expected = exp.translate_state(state, groups)
    steps = []
    for k in range(churn_changes):
        index = (k * 7919) % spec.services  # spread over services, deterministic
        before = exp.service_endpoints(state, index)
        state, added, removed = mesh.churn_endpoints(state, index)
        after = exp.service_endpoints(state, index)
        name = state.cluster_name(index)
        probe = Probe(
            id=f"churn-{k}", type_url=wire.ENDPOINT, name=name,
            contains=(wire.endpoint_address(added.ip),),
            absent=(wire.endpoint_address(removed.ip),) if removed else (),
        )
        _never_before(probe, before.get(name))
        steps.append(ChurnStep(state, index, Change(probe.id, (probe,)), after))
    if not full:
        return Plan(spec, groups, initial, initial_expected, tuple(steps), None, None)
    routing = _routing_change(state, initial_expected, groups)
    added = _new_service(routing.state, routing.expected, groups)
    return Plan(spec, groups, initial, initial_expected, tuple(steps), routing, added)


def _routing_change(state: mesh.MeshState, before: exp.Expected, groups: int) -> StateChange:
    """``before``: routes before the change (endpoint churn does not change routes)."""
    index = next(s.index for s in state.services if s.weights is not None)
    new_state = mesh.set_weights(state, index, NEW_WEIGHTS)
    after = exp.translate_state(new_state, groups)
    port = mesh.BASE_PORT
    probe = Probe(
        id="routing", type_url=wire.ROUTE, name=str(port),
        contains=(wire.weighted_cluster(state.cluster_name(index, port, "v1"), NEW_WEIGHTS[0]),
                  wire.weighted_cluster(state.cluster_name(index, port, "v2"), NEW_WEIGHTS[1])),
    )
    for resources in before.by_group.values():
        _never_before(probe, resources.get(wire.ROUTE, {}).get(probe.name))
    for resources in after.by_group.values():
        if not probe.matches(resources.get(wire.ROUTE, {}).get(probe.name, b"")):
            raise AssertionError("the routing probe does not match the translator's new output")
    return StateChange(new_state, [index], Change("routing", (probe,)), after)


def _new_service(state: mesh.MeshState, before: exp.Expected, groups: int) -> StateChange:
    new_state, index = mesh.add_service(state)
    after = exp.translate_state(new_state, groups)
    port = mesh.BASE_PORT
    probes = (
        Probe(id="new-service-eds", type_url=wire.ENDPOINT, name=new_state.cluster_name(index),
              contains=(wire.endpoint_address(mesh.pod_ip(index, 0)),)),
        Probe(id="new-service-rds", type_url=wire.ROUTE, name=str(port),
              contains=(wire.virtual_host(f"{new_state.hostname(index)}:{port}"),)),
    )
    for probe in probes:
        for resources in before.by_group.values():
            _never_before(probe, resources.get(probe.type_url, {}).get(probe.name))
        for resources in after.by_group.values():
            if not probe.matches(resources.get(probe.type_url, {}).get(probe.name, b"")):
                raise AssertionError(f"probe {probe.id} does not match the translator's output")
    return StateChange(new_state, [index], Change("new-service", probes), after)


def _never_before(probe: Probe, content: bytes | None) -> None:
    if content is not None and probe.matches(content):
        raise AssertionError(f"probe {probe.id} already matches the content before its change")
