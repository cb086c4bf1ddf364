"""The control plane is SIGKILLed under steady traffic through real Envoys, then restarted on
the same ports, folder and CA (issue 19, "Faults survived").

- No request fails while it is down: the Envoys keep what they hold.
- After the restart every resource has the same version (versions are content hashes), so the
  reconnecting Envoys are sent nothing they already hold: no LDS, CDS, RDS, EDS or ECDS update,
  no listener modified or drained, the same ``version_info`` in their ``/config_dump``.
- The one thing that changes is the workload certificate: keys live only in the control
  plane's memory, so the new process issues new ones (a new SDS version). Envoy applies them in
  place; no listener is touched. The root comes from the CA folder and stays the same.

One proxy speaks state-of-the-world ADS, the other delta ADS: both reconnect protocols are
covered (SotW ``version_info``, delta ``initial_resource_versions``).

``pytest tests/faults/test_control_plane_restart.py -s`` prints the figures.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.faults.restart_mesh import NAMESPACE, PROXIES, call_server, mesh_envoy, mesh_yaml
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.envoy import EnvoyProcess
from tests.harness.envoy_state import held_versions, xds_counters
from tests.harness.jwt_issuer import TestIssuer
from tests.harness.ports import free_port
from tests.harness.traffic import TrafficLoop
from tests.harness.upstream import HttpUpstream
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

# Requests that must succeed while the control plane is down (the outage lasts that long).
REQUESTS_WHILE_DOWN = int(os.environ.get("RESTART_TEST_REQUESTS_WHILE_DOWN", "100"))
DELTA = {"client": False, "server": True}
EXPECTED_TYPES = {"CDS", "EDS", "LDS", "RDS", "SDS"}


def synced(cp: ServedControlPlane, types_of: Callable[[str], set[str]]) -> bool:
    """Both proxies connected, every type they asked for sent and ACKed."""
    status, body = cp.get("/debug/syncz")
    if status != 200:
        return False
    entries = {e["proxy"]: e for e in json.loads(body)}
    for name in PROXIES:
        entry = entries.get(f"{name}-0.{NAMESPACE}")
        if entry is None:
            return False
        states = {t: s["state"] for t, s in (entry.get("types") or {}).items()}
        if not types_of(name) <= set(states) or set(states.values()) != {"SYNCED"}:
            return False
    return True


def types_of(name: str) -> set[str]:
    """The types a proxy holds: the server also has its RBAC and jwt_authn configs (ECDS)."""
    return EXPECTED_TYPES | ({"ECDS"} if name == "server" else set())


def wait_connected(envoys: dict[str, EnvoyProcess], state: int, what: str) -> None:
    for envoy in envoys.values():
        wait_for(
            lambda e=envoy: e.stat("control_plane.connected_state") == state,  # type: ignore[misc]
            message=f"{envoy.name} {what}",
        )


def wait_new_certificates(
    envoys: dict[str, EnvoyProcess], before: dict[str, dict[tuple[str, str], tuple[str, str]]]
) -> None:
    for name, envoy in envoys.items():
        old = before[name][("SDS", "default")][0]
        wait_for(
            lambda e=envoy, o=old: held_versions(e)[("SDS", "default")][0] != o,  # type: ignore[misc]
            message=f"{name} holds its new certificate",
        )


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {
        name: (before.get(name, 0), after.get(name, 0))
        for name in sorted(before.keys() | after.keys())
        if before.get(name, 0) != after.get(name, 0)
    }


def applied(name: str) -> bool:
    """A counter that moves only when Envoy applies (or refuses) an update, or changes a
    listener or cluster. ``update_attempt`` and ``update_failure`` count the reconnect attempts
    while the control plane is down, so they move, as they should."""
    return name.startswith(("listener_manager.listener_", "cluster_manager.cluster_")) or (
        name.endswith((".update_success", ".update_rejected", ".config_reload", ".config_fail"))
    )


def is_sds(name: str) -> bool:
    return name.startswith("sds.") or ".sds." in name


def test_sigkill_under_traffic_leaves_what_envoys_hold_untouched(tmp_path: Path) -> None:
    issuer = TestIssuer()
    config = tmp_path / "config"
    config.mkdir()
    ports = {"tls": free_port(), "plain": free_port(), "monitoring": free_port()}
    figures: dict[str, Any] = {}
    with ExitStack() as stack:
        app = stack.enter_context(HttpUpstream("app"))
        (config / "mesh.yaml").write_text(mesh_yaml(app.port, issuer.jwks()))
        first = stack.enter_context(
            served_control_plane(tmp_path, config, ports=ports, log_name="controlplane-1.log")
        )
        root_before = (first.ca_dir / "root-cert.pem").read_text()
        envoys = {
            name: stack.enter_context(
                mesh_envoy(tmp_path, first.ca_dir, ports["tls"], name, delta=DELTA[name])
            )
            for name in PROXIES
        }
        for envoy in envoys.values():
            envoy.wait_ready()
        wait_for(lambda: call_server() == 200, message="client -> server over mTLS")
        wait_for(lambda: synced(first, types_of), message="both proxies SYNCED")
        assert any(t == "ECDS" for t, _ in held_versions(envoys["server"])), "RBAC/JWT over ECDS"
        before = {name: held_versions(e) for name, e in envoys.items()}
        counters_before = {name: xds_counters(e) for name, e in envoys.items()}

        traffic = stack.enter_context(TrafficLoop(call_server, interval=0.01, max_seconds=150))
        wait_for(lambda: traffic.succeeded_since(0) >= 20, message="traffic flowing")
        # --- SIGKILL, then the outage --------------------------------------------------------
        killed_at = traffic.count()
        killed = time.monotonic()
        assert first.kill() == -9
        wait_connected(envoys, 0, "sees the control plane gone")
        wait_for(
            lambda: traffic.succeeded_since(killed_at) >= REQUESTS_WHILE_DOWN,
            deadline=60,
            message="requests while the control plane is down",
        )
        restarted_at = traffic.count()
        # --- the restart: same ports, folder and CA folder ---------------------------------
        second = stack.enter_context(
            served_control_plane(tmp_path, config, ports=ports, log_name="controlplane-2.log")
        )
        back = time.monotonic()
        wait_connected(envoys, 1, "reconnected")
        wait_for(lambda: synced(second, types_of), message="both proxies SYNCED again")
        # New certificates were issued and Envoy applied them: wait until each holds its new
        # "default" secret, then let traffic run over the new certificates.
        wait_new_certificates(envoys, before)
        synced_at = traffic.count()
        resynced = time.monotonic()
        wait_for(lambda: traffic.succeeded_since(synced_at) >= 50, message="traffic after")
        traffic.stop()
        after = {name: held_versions(e) for name, e in envoys.items()}
        counters_after = {name: xds_counters(e) for name, e in envoys.items()}
        root_after = (second.ca_dir / "root-cert.pem").read_text()
        outcomes = traffic.outcomes()
        figures = {
            "requests": len(outcomes),
            "failed": len(traffic.failures()),
            "while_down": restarted_at - killed_at,
            "during_restart_and_resync": synced_at - restarted_at,
            "seconds_down": round(back - killed, 2),
            "seconds_from_ready_to_synced": round(resynced - back, 2),
            "lds_cds_update_success_before": {
                name: {
                    k: v
                    for k, v in c.items()
                    if k.endswith(("lds.update_success", "cds.update_success"))
                }
                for name, c in counters_before.items()
            },
            "counters_changed": {
                name: {
                    k: f"{a} -> {b}"
                    for k, (a, b) in changed(counters_before[name], counters_after[name]).items()
                }
                for name in envoys
            },
            "versions_changed": {
                name: sorted(
                    f"{t} {n}: {before[name].get((t, n), ('-',))[0]} -> {after[name].get((t, n), ('-',))[0]}"
                    for (t, n) in before[name].keys() | after[name].keys()
                    if before[name].get((t, n), ("",))[0] != after[name].get((t, n), ("",))[0]
                )
                for name in envoys
            },
        }
        print("FIGURES " + json.dumps(figures, indent=1, sort_keys=True))

    assert traffic.failures() == [], "no request fails while the control plane is down or back"
    assert root_after == root_before, "the CA folder keeps its root"
    for name in envoys:
        # The same resources at the same versions, last updated before the kill: nothing was
        # re-sent. Only the workload certificate is new.
        unchanged = {k: v for k, v in before[name].items() if k != ("SDS", "default")}
        assert {k: after[name][k] for k in unchanged if k in after[name]} == unchanged, name
        assert after[name].keys() == before[name].keys(), name
        moved = changed(counters_before[name], counters_after[name])
        assert {k: v for k, v in moved.items() if applied(k) and not is_sds(k)} == {}, (
            f"{name}: no LDS, CDS, RDS, EDS or ECDS update applied, no listener or cluster changed"
        )
        rejected = {k: v for k, v in counters_after[name].items() if k.endswith("_rejected") and v}
        assert rejected == {}, name
        assert counters_after[name].get("listener_manager.total_listeners_draining", 0) == 0
