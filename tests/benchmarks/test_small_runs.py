"""A small configuration of every scenario, against the floor and (when `controlplane serve`
exists) our control plane: every proxy converges to the right version, no update is lost, and
the results are written. Never asserts on timings."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.__main__ import PRESETS
from benchmarks.runner import run
from tests.benchmarks.support import MAIN, assert_converged

REPO = Path(__file__).resolve().parents[2]
SMALL = PRESETS["small"]
TARGETS = ["floor", "controlplane"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("mode", ["sotw", "delta"])
async def test_main_scenarios_converge(target: str, mode: str, tmp_path: Path) -> None:
    config = replace(SMALL, targets=(target,), scenarios=MAIN, mode=mode)
    results = await run(config)
    assert results["errors"] == []
    assert [r["scenario"] for r in results["runs"]] == list(MAIN)
    for result in results["runs"]:
        assert result["target"] == target and result["mode"] == mode
        assert_converged(result)
    cold = results["runs"][0]
    assert cold["expected_counts"]["CDS"] > 0 and cold["expected_counts"]["RDS"] > 0
    churn = results["runs"][1]
    assert churn["changes"] == SMALL.churn_changes
    assert churn["expected"] == SMALL.churn_changes * SMALL.proxies


@pytest.mark.parametrize("target", TARGETS)
async def test_scaling_curves_complete(target: str) -> None:
    config = replace(SMALL, targets=(target,), scenarios=("scaling_services", "scaling_proxies"))
    results = await run(config)
    assert results["errors"] == []
    assert [r["services"] for r in results["scaling_services"]] == list(SMALL.scaling_services)
    for r in results["scaling_services"]:
        assert_converged(r)
        assert r["translation_seconds_in_process"] > 0
    assert [s["cold_start"]["proxies"] for s in results["scaling_proxies"]] == list(SMALL.scaling_proxies)
    for s in results["scaling_proxies"]:
        assert_converged(s["cold_start"])
        assert_converged(s["endpoint_churn"])


@pytest.mark.envoy
@pytest.mark.parametrize("target", TARGETS)
async def test_real_envoys_apply_every_endpoint_change(target: str) -> None:
    config = replace(SMALL, targets=(target,), scenarios=("envoy_churn",), churn_changes=3)
    results = await run(config)
    assert results["errors"] == []
    (envoy,) = results["envoy"]
    assert envoy["ready"] == SMALL.envoys
    assert envoy["complete"] and envoy["converged"] == 3 * SMALL.envoys, envoy


def test_results_are_written_as_json_markdown_and_png(tmp_path: Path) -> None:
    runs = [
        {"scenario": "cold_start", "target": t, "mode": "sotw", "proxies": 10, "services": 20,
         "converged": 10, "expected": 10, "cpu_seconds": c, "peak_rss_mb": 50.0, "bytes_sent": 1000,
         "rss_per_proxy_kb": 12.0,
         "convergence_ms": {"p50": 1.0, "p95": 2.0, "p99": c, "max": 4.0, "mean": 1.5}}
        for t, c in (("floor", 1.0), ("controlplane", 2.5))
    ]
    results = {"meta": {"started": "x", "finished": "y",
                        "machine": {"cpus": 2, "platform": "linux", "python": "3.11"},
                        "config": {"spec": {"services": 20, "endpoints": 2, "virtual_services": 4,
                                            "destination_rules": 4, "namespaces": 3},
                                   "proxies": 10, "groups": 2, "mode": "sotw"}},
               "runs": runs, "scaling_services": [], "scaling_proxies": [], "envoy": [],
               "peer": {}, "errors": []}
    written = report.write(results, tmp_path)
    names = {p.name for p in written}
    assert {"results.json", "summary.md", "scenarios.png"} <= names
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["ratios"][0]["p99"] == 2.5 and data["ratios"][0]["cpu_seconds"] == 2.5
    summary = (tmp_path / "summary.md").read_text()
    assert "| cold_start | controlplane | 10/10 |" in summary and "scenarios.png" in summary
    assert (tmp_path / "scenarios.png").read_bytes().startswith(b"\x89PNG")


def test_the_documented_command_writes_a_results_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--preset", "small", "--targets", "floor",
         "--scenarios", "cold_start", "--out", str(tmp_path)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (folder,) = list(tmp_path.iterdir())
    assert {p.name for p in folder.iterdir()} >= {"results.json", "summary.md", "scenarios.png"}
    assert "| cold_start | floor | 10/10 |" in done.stdout


async def test_peer_serves_the_same_clusters_to_every_polling_client_or_says_why_not() -> None:
    from benchmarks import peer

    results = await run(replace(SMALL, targets=(), scenarios=("peer",)))
    result = results["peer"]
    if peer.available() is not None:
        assert result == {"skipped": peer.available()}
        pytest.skip(f"sovereign peer not installed (the `.[peer]` extra): {peer.available()}")
    assert "error" not in result, result
    assert result["clusters"] > 0 and result["response_bytes"] > 0
    for phase in ("cold_start", "new_cluster"):
        assert result[phase]["complete"], result[phase]
        assert result[phase]["converged"] == SMALL.proxies


async def test_a_change_scenario_run_alone_connects_its_proxies_first() -> None:
    results = await run(replace(SMALL, targets=("floor",), scenarios=("endpoint_churn",)))
    (churn,) = results["runs"]
    assert churn["scenario"] == "endpoint_churn"
    assert_converged(churn)
