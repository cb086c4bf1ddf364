"""End to end: ``python -m controlplane.demo`` in short mode, with the real control plane,
real Envoys and the demo apps; then the measured outcome of each phase, and that no
process is left behind (after the tour, and after a SIGINT in the middle of it).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.demo.supervisor import group_alive, poll_until

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LOADGEN = "spiffe://cluster.local/ns/default/sa/loadgen"
PRODUCTPAGE = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
REVIEWS = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
INGRESS = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"


def _block() -> str:
    """An address block no other test run is likely to use at the same time."""
    return f"127.{random.randint(100, 199)}.{random.randint(1, 254)}"


def _demo(workdir: Path, *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "controlplane.demo", "--no-live", "--workdir", str(workdir)]
    return subprocess.Popen(
        [*argv, "--addresses", _block(), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )


def _started_groups(workdir: Path) -> list[int]:
    path = workdir / "started.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["pgid"] for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("demo")
    demo = _demo(workdir, "--duration", "3", "--rate", "60")
    try:
        output, _ = demo.communicate(timeout=170)
    finally:
        demo.kill()
        demo.wait()
    results_path = workdir / "results.json"
    assert demo.returncode == 0 and results_path.exists(), output[-4000:]
    results = json.loads(results_path.read_text())
    yield {
        "workdir": workdir,
        "output": output,
        "phases": {p["phase"]: p for p in results["phases"]},
        "complete": results["complete"],
    }


def _users(tour: dict[str, Any], phase: str) -> dict[str, Any]:
    return tour["phases"][phase]["traffic"]["users"]


def _share(user: dict[str, Any], version: str) -> float:
    answered = sum(user["versions"].values())
    assert answered > 0
    return user["versions"].get(version, 0) / answered


def test_every_change_reached_every_sidecar(tour: dict[str, Any]) -> None:
    assert tour["complete"]
    for key in ("all-v1", "jason", "canary", "fault", "strict", "authz", "gateway-api"):
        propagation = tour["phases"][key]["propagation"]
        assert propagation["complete"], (key, propagation)


def test_baseline_spreads_and_all_v1_pins(tour: dict[str, Any]) -> None:
    baseline = _users(tour, "baseline")["anonymous"]
    assert set(baseline["versions"]) == {"v1", "v2", "v3"}
    for user in _users(tour, "all-v1").values():
        assert user["requests"] > 0 and user["versions"] == {"v1": user["requests"]}
        assert user["errors"] == 0


def test_jason_goes_to_v2_and_others_stay_on_v1(tour: dict[str, Any]) -> None:
    users = _users(tour, "jason")
    assert users["jason"]["requests"] > 0 and _share(users["jason"], "v2") == 1.0
    assert _share(users["anonymous"], "v1") == 1.0


def test_canary_sends_about_ten_percent_to_v3(tour: dict[str, Any]) -> None:
    users = _users(tour, "canary")
    anonymous = users["anonymous"]
    n = sum(anonymous["versions"].values())
    assert set(anonymous["versions"]) <= {"v1", "v3"}
    # binomial(n, 0.1): five standard deviations either side
    assert abs(_share(anonymous, "v3") - 0.10) <= 5 * math.sqrt(0.09 / n)
    assert _share(users["jason"], "v2") == 1.0


def test_fault_shows_injected_ratings_errors(tour: dict[str, Any]) -> None:
    jason = _users(tour, "fault")["jason"]  # jason -> reviews v2 -> ratings
    assert 0 < jason["errors"] < jason["requests"]
    assert set(jason["error_kinds"]) == {"ratings HTTP 500"}
    assert _users(tour, "canary")["jason"]["errors"] == 0


def test_strict_refuses_the_plaintext_caller_and_keeps_mesh_traffic(tour: dict[str, Any]) -> None:
    before = tour["phases"]["fault"]["traffic"]["plaintext"]
    after = tour["phases"]["strict"]["traffic"]["plaintext"]
    assert before["probes"] > 0 and before["accepted"] == before["probes"]  # PERMISSIVE
    assert after["probes"] > 0 and after["accepted"] == 0
    for user in _users(tour, "strict").values():
        assert user["requests"] > 0
        assert set(user["error_kinds"]) <= {"ratings HTTP 500"}  # only the fault still on


def test_authz_lets_productpage_call_reviews_and_refuses_other_callers(tour: dict[str, Any]) -> None:
    """reviews: ALLOW from productpage's principal only; productpage: DENY on /admin."""
    before = tour["phases"]["strict"]["traffic"]["calls"]
    after = tour["phases"]["authz"]["traffic"]["calls"]
    # Before the policies, loadgen may call reviews and productpage's /admin.
    for edge in ("loadgen -> reviews /", "loadgen -> productpage /admin"):
        assert before[edge].get("200", 0) > 0 and "403" not in before[edge], (edge, before[edge])
    # After: productpage (the one allowed principal) still gets 200 from reviews, and
    # loadgen's own pages too; loadgen's calls to reviews and to /admin get 403.
    assert set(after["productpage -> reviews /"]) == {"200"}, after["productpage -> reviews /"]
    assert set(after["loadgen -> productpage /"]) == {"200"}, after["loadgen -> productpage /"]
    assert set(after["loadgen -> reviews /"]) == {"403"}, after["loadgen -> reviews /"]
    assert set(after["loadgen -> productpage /admin"]) == {"403"}, after["loadgen -> productpage /admin"]
    for user in _users(tour, "authz").values():
        assert user["requests"] > 0
        assert set(user["error_kinds"]) <= {"ratings HTTP 500"}  # only the fault still on


def test_gateway_api_phase_brings_the_users_in_through_the_httproute(tour: dict[str, Any]) -> None:
    """Users call /productpage at the ingress gateway's Gateway API listener: every request is
    answered through the HTTPRoute, productpage sees the gateway's identity, and the mesh's
    rules still apply behind it (jason on v2, the others 90/10 v1/v3)."""
    traffic = tour["phases"]["gateway-api"]["traffic"]
    through_gateway = traffic["calls"]["istio-ingressgateway -> productpage /productpage"]
    assert set(through_gateway) == {"200"} and through_gateway["200"] > 0, through_gateway
    assert "loadgen -> productpage /" not in traffic["calls"]
    assert traffic["identities"]["productpage"].keys() == {INGRESS}
    users = traffic["users"]
    assert _share(users["jason"], "v2") == 1.0
    assert set(users["anonymous"]["versions"]) <= {"v1", "v3"}
    for user in users.values():
        assert set(user["error_kinds"]) <= {"ratings HTTP 500"}  # only the fault still on


def test_each_service_saw_its_callers_spiffe_identity(tour: dict[str, Any]) -> None:
    identities = tour["phases"]["strict"]["traffic"]["identities"]
    assert identities["productpage"].keys() == {LOADGEN}
    assert identities["details"].keys() == {PRODUCTPAGE}
    assert identities["reviews"].keys() == {PRODUCTPAGE}
    assert identities["ratings"].keys() == {REVIEWS}


def test_no_process_outlives_the_tour(tour: dict[str, Any]) -> None:
    groups = _started_groups(tour["workdir"])
    assert len(groups) >= 1 + 7 + 6  # control plane, sidecars, apps
    assert not [g for g in groups if group_alive(g)]
    assert (tour["workdir"] / "logs" / "control-plane.log").exists()


def test_sigint_mid_tour_stops_every_process(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "--duration", "30")
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if line.startswith("mesh up"):
                break
        else:
            pytest.fail("the demo ended before the mesh was up")
        groups = _started_groups(tmp_path)
        assert groups and all(group_alive(g) for g in groups)
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=30)
        assert demo.returncode == 130
        assert poll_until(lambda: not any(group_alive(g) for g in groups), timeout=5)
    finally:
        demo.kill()
        demo.wait()
