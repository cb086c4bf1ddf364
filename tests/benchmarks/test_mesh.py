"""The mesh generator: valid Kubernetes/Istio input, mutations that change exactly what they say."""

from __future__ import annotations

import pytest

from benchmarks import mesh
from controlplane.sources.yaml_loader import load_file

SPEC = mesh.MeshSpec(services=12, endpoints=3, virtual_services=3, destination_rules=5, namespaces=4)


def test_generated_documents_are_valid_input() -> None:
    state = mesh.generate(SPEC)
    snapshot = mesh.snapshot(state)  # parses and validates every document with the model
    counts = {kind: len(snapshot.of_kind(kind)) for kind in snapshot.kinds()}
    assert counts == {"Service": 12, "EndpointSlice": 12, "Pod": 36, "DestinationRule": 5,
                      "VirtualService": 3}
    assert {s.key.namespace for s in snapshot.of_kind("Service")} == {"ns-0", "ns-1", "ns-2", "ns-3"}


def test_folder_has_one_file_per_service_with_all_its_documents(tmp_path) -> None:
    state = mesh.generate(SPEC)
    mesh.write_folder(tmp_path, state)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml"))
    assert len(files) == 12 and "ns-1/svc-5.yaml" in files
    kinds = [d.body["kind"] for d in load_file(tmp_path / "ns-0" / "svc-0.yaml").documents]
    assert kinds == ["Service", "Pod", "Pod", "Pod", "EndpointSlice", "DestinationRule", "VirtualService"]
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


def test_churn_adds_fresh_addresses_and_removes_originals_only() -> None:
    state = mesh.generate(SPEC)
    seen = {e.ip for s in state.services for e in s.endpoints}
    for _ in range(4):
        state, added, removed = mesh.churn_endpoints(state, 2)
        assert added.ip not in seen
        seen.add(added.ip)
        ips = {e.ip for e in state.service(2).endpoints}
        assert added.ip in ips
        if removed is not None:
            assert removed.ip not in ips and removed in mesh.generate(SPEC).service(2).endpoints
    assert {e.ip for e in state.service(3).endpoints} == {e.ip for e in mesh.generate(SPEC).service(3).endpoints}


def test_weights_and_new_service() -> None:
    state = mesh.set_weights(mesh.generate(SPEC), 1, (37, 63))
    assert state.service(1).weights == (37, 63)
    added, index = mesh.add_service(state)
    assert index == 12 and len(added.services) == 13
    assert mesh.snapshot(added).get_typed("Service", "ns-0", "svc-12") is not None


def test_a_destination_rule_toggled() -> None:
    state = mesh.generate(SPEC)
    index = SPEC.destination_rules  # the first service without one (nor a VirtualService)
    kinds = {d["kind"] for d in mesh.service_documents(mesh.toggle_rule(state, index), index)}
    assert "DestinationRule" in kinds
    again = mesh.toggle_rule(mesh.toggle_rule(state, index), index)
    assert "DestinationRule" not in {d["kind"] for d in mesh.service_documents(again, index)}
    with pytest.raises(ValueError):
        mesh.toggle_rule(state, 0)  # its VirtualService routes to the rule's subsets
