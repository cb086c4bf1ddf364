"""The demo's YAML: valid for the project's own loader, and the address plan it encodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.demo.ingress import write_ingress_config
from controlplane.demo.phases import PHASE_KEYS, PHASES, select
from controlplane.demo.topology import (
    BASE_DIR,
    PHASES_DIR,
    copy_config,
    load_workloads,
    rewrite_block,
    validate_block,
)
from controlplane.sources.parsing import parse_document
from controlplane.sources.yaml_loader import load_file

ALL_YAML = sorted([*BASE_DIR.glob("*.yaml"), *PHASES_DIR.glob("*/*.yaml")])


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(BASE_DIR.parent)))
def test_every_demo_file_is_accepted_by_the_loader(path: Path) -> None:
    loaded = load_file(path)
    assert not loaded.problems
    assert loaded.documents
    for document in loaded.documents:
        parsed = parse_document(document)
        errors = [d for d in parsed.diagnostics if d.is_error]
        assert parsed.resource is not None and not errors, (document.body.get("kind"), errors)


def test_workloads_come_from_workload_entries_and_sidecars() -> None:
    workloads = {w.name: w for w in load_workloads(BASE_DIR)}
    assert set(workloads) == {
        "productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1", "loadgen",
    }  # fmt: skip
    reviews = workloads["reviews-v2"]
    assert (reviews.address, reviews.inbound_port) == ("127.0.10.4", 9080)
    assert (reviews.app_host, reviews.app_port) == (
        "127.0.10.4",
        8080,
    )  # 0.0.0.0:8080 = instance IP
    assert (reviews.egress_address, reviews.egress_port) == ("127.0.10.104", 9080)
    assert reviews.spiffe_id == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
    assert reviews.node_id == "sidecar~127.0.10.4~reviews-v2.default~default.svc.cluster.local"
    assert reviews.calls == ("ratings",) and workloads["reviews-v1"].calls == ()
    assert workloads["productpage-v1"].calls == ("details", "reviews")
    loadgen = workloads["loadgen"]
    assert not loadgen.has_app and loadgen.inbound_port is None and loadgen.egress_address
    # every listener address is distinct: no two sidecars bind the same address:port
    binds = [(w.address, w.inbound_port) for w in workloads.values() if w.inbound_port]
    binds += [(w.egress_address, w.egress_port) for w in workloads.values()]
    binds += [(w.app_host, w.app_port) for w in workloads.values() if w.has_app]
    assert len(binds) == len(set(binds))


def test_address_block_moves_every_address(tmp_path: Path) -> None:
    copy_config(BASE_DIR, tmp_path, "127.0.77")
    moved = load_workloads(tmp_path)
    assert all(w.address.startswith("127.0.77.") for w in moved)
    assert all(w.egress_address and w.egress_address.startswith("127.0.77.") for w in moved)
    assert "127.0.10." not in "".join(p.read_text() for p in tmp_path.glob("*.yaml"))
    assert (
        rewrite_block("bind: 127.0.10.101 # 127.0.100.1", "127.1.2")
        == "bind: 127.1.2.101 # 127.0.100.1"
    )
    with pytest.raises(ValueError):
        validate_block("10.0.0")


def test_phase_selection() -> None:
    assert select(None, False) == ((), PHASES)
    before, run = select("canary", only=True)
    assert [p.key for p in before] == ["baseline", "all-v1", "jason"] and [p.key for p in run] == [
        "canary"
    ]
    assert [p.key for p in select("jason", only=False)[1]] == ["baseline", "all-v1", "jason"]
    with pytest.raises(ValueError):
        select("nope", False)
    assert PHASE_KEYS[-3:] == ("strict", "authz", "gateway-api")


def test_phase_overlays_replace_one_file_per_service(tmp_path: Path) -> None:
    for phase in PHASES:
        phase.apply(tmp_path, "127.0.10")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "authorization-policy-productpage.yaml",
        "authorization-policy-reviews.yaml",
        "gateway-api.yaml",
        "peer-authentication.yaml",
        "virtual-service-details.yaml",
        "virtual-service-productpage.yaml",
        "virtual-service-ratings.yaml",
        "virtual-service-reviews.yaml",
    ]
    assert "weight: 10" in (tmp_path / "virtual-service-reviews.yaml").read_text()


def test_the_tour_config_passes_analyze_without_a_warning(tmp_path: Path) -> None:
    """Every phase's policies select workloads, with mTLS on and HTTP ports (see
    controlplane.analysis.policies); the Gateway API phase's Gateway names the ingress
    gateway's Service."""
    from controlplane.analysis import analyze_paths

    ingress = tmp_path / "config"  # the ingress config, with the Secret the demo writes
    write_ingress_config(ingress, tmp_path, "127.0.10")
    for phase in PHASES:
        if phase.overlay is not None:
            report = analyze_paths([BASE_DIR, ingress, phase.overlay])
            assert report.diagnostics == (), (phase.key, [str(d) for d in report.diagnostics])
