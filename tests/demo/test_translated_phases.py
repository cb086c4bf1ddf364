"""Each phase's YAML, put through the project's loader and translator (no Envoy, no server),
gives every sidecar concerned the config its propagation check waits for, and the
previous phase's config does not. The end-to-end test checks the same in real Envoys."""

from __future__ import annotations

import pytest

from controlplane.demo.phases import PHASES
from tests.demo.translated import WORKLOADS, as_dump, snapshot_up_to


@pytest.mark.parametrize(
    "index", [i for i, p in enumerate(PHASES) if p.check is not None], ids=lambda i: PHASES[i].key
)
def test_phase_yaml_translates_to_what_its_check_waits_for(index: int) -> None:
    phase = PHASES[index]
    assert phase.check is not None
    before, after = snapshot_up_to(index - 1), snapshot_up_to(index)
    concerned = [w for w in WORKLOADS if phase.applies_to(w)]
    assert concerned
    for workload in concerned:
        assert not phase.check(workload, as_dump(workload, before, phase.resource)), workload.name
        assert phase.check(workload, as_dump(workload, after, phase.resource)), workload.name
