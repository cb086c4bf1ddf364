"""A reconnect storm against a real ``controlplane serve``: every proxy connects at once, then
the control plane is killed and restarted and every proxy reconnects at once.

    .venv/bin/python benchmarks/reconnect_storm.py [--proxies 2000] [--processes 4]
        [--services 100] [--groups 20] [--mode sotw] [--cp-args "--xds-max-streams-per-peer 0"]

``--stalled N`` adds N proxies that subscribe and then never read before the push wave (a
hung Envoy), to see whether the others' convergence changes.

The simulated sidecars are the load client's (``benchmarks/load_client.py``: ADS as Envoy
does it, in child processes, on the plaintext port without credential; after an error they
retry with Envoy's jittered exponential backoff, 500 ms doubling to 30 s). For each phase
it reports the time until every proxy converged (CDS, EDS, LDS and RDS received and ACKed),
the largest ``/healthz/ready`` latency (polled every 100 ms from a thread), the control
plane's peak RSS and CPU seconds, the clients' CPU seconds and how many attempts were
refused. ``--cp-args`` adds flags to ``controlplane serve`` (e.g. to compare limits).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from benchmarks import mesh, plan, proxies, wire
from benchmarks.clients import ClientConfig, ClientPool
from benchmarks.monitor import ProcessMonitor
from benchmarks.targets import free_port
from controlplane.processes import stop_process


@dataclass
class Health:
    """Polls /healthz/ready from a thread; keeps the largest latency per phase."""

    port: int
    phase: str = "start"
    worst: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.is_set():
            phase, started = self.phase, time.monotonic()
            try:
                url = f"http://127.0.0.1:{self.port}/healthz/ready"
                with urllib.request.urlopen(url, timeout=60) as response:
                    response.read()
                self.worst[phase] = max(self.worst.get(phase, 0.0), time.monotonic() - started)
            except OSError:  # down (restarting): not a latency
                self.failures[phase] = self.failures.get(phase, 0) + 1
            self._stop.wait(0.1)

    def start(self) -> Health:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Server:
    """``controlplane serve`` on fixed free ports, so a restart comes back where it was."""

    def __init__(self, workdir: Path, extra: list[str], pythonpath: str | None = None) -> None:
        self.workdir = workdir
        self.env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
        self.xds_port, self.monitoring_port = free_port(), free_port()
        self.argv = [
            sys.executable, "-m", "controlplane", "serve", "--config-dir", str(workdir / "mesh"),
            "--xds-plaintext-port", str(self.xds_port), "--no-xds-tls",
            "--monitoring-port", str(self.monitoring_port), "--ca-dir", str(workdir / "certs"),
            "--log-level", "warning",
            # Every simulated proxy is 127.0.0.1 without a credential: no cap per peer (a
            # tree from before the limits, --cp-pythonpath, does not know the flag).
            *([] if pythonpath else ["--xds-max-streams-per-peer", "0"]),
            *extra,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.monitor: ProcessMonitor | None = None
        self.log = open(workdir / "controlplane.log", "ab")  # noqa: SIM115 - closed in stop()

    def start(self) -> float:
        """Start; returns seconds until /healthz/ready answered 200."""
        started = time.monotonic()
        self.process = subprocess.Popen(self.argv, stdout=self.log, stderr=self.log,
                                        stdin=subprocess.DEVNULL, cwd=self.workdir, env=self.env)
        self.monitor = ProcessMonitor(self.process.pid)
        while time.monotonic() - started < 120:
            if self.process.poll() is not None:
                raise RuntimeError(f"control plane exited; see {self.workdir}/controlplane.log")
            try:
                url = f"http://127.0.0.1:{self.monitoring_port}/healthz/ready"
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("control plane not ready in 120 s")

    def kill(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        if self.process is not None:
            stop_process(self.process)
        self.log.close()


class Stalled:
    """Proxies that subscribe to clusters and listeners, then never read again (a hung
    Envoy): the server must neither buffer for them without bound nor make others wait."""

    def __init__(self, target: str, count: int, groups: int, namespaces: int) -> None:
        self.target, self.count = target, count
        self.groups, self.namespaces = groups, namespaces
        self.channels: list[grpc.aio.Channel] = []
        self.calls: list[object] = []

    async def open(self) -> None:
        for i in range(self.count):
            ident = proxies.identity(900_000 + i, self.groups, self.namespaces)
            channel = grpc.aio.insecure_channel(self.target, options=[
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.max_receive_message_length", -1),
            ])
            call = channel.stream_stream(wire.ADS_SOTW, request_serializer=None,
                                         response_deserializer=None)()
            node = proxies.node(ident)
            for type_url in (wire.CLUSTER, wire.LISTENER):
                request = discovery_pb2.DiscoveryRequest(node=node, type_url=type_url)
                await call.write(request.SerializeToString())
            self.channels.append(channel)
            self.calls.append(call)
        # Each takes and ACKs its first clusters and listeners, as a healthy proxy would; then
        # it hangs: the next push finds it not reading.
        await asyncio.gather(*(self._first_responses(call) for call in self.calls))

    @staticmethod
    async def _first_responses(call: Any) -> None:
        wanted = {wire.CLUSTER, wire.LISTENER}
        while wanted:
            raw = await call.read()
            if raw is grpc.aio.EOF:
                return
            response = discovery_pb2.DiscoveryResponse.FromString(raw)
            wanted.discard(response.type_url)
            ack = discovery_pb2.DiscoveryRequest(
                type_url=response.type_url, version_info=response.version_info,
                response_nonce=response.nonce)
            await call.write(ack.SerializeToString())

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()  # type: ignore[attr-defined]
        for channel in self.channels:
            await channel.close()


async def phase(name: str, pool: ClientPool, server: Server, health: Health, t0: float,
                timeout: float, probes: list[str] | None = None) -> dict[str, object]:
    """Until every proxy synced (or satisfied ``probes``), then the figures since ``t0``."""
    assert server.monitor is not None
    cpu_before, client_cpu_before = server.monitor.cpu_seconds(), pool.cpu_seconds()
    if probes is None:
        done = await pool.wait_synced(timeout)
        times = [acked for _, acked, _ in pool.synced.values()]
    else:
        done = await pool.wait_converged(probes, timeout)
        times = [acked for _, acked in pool.converged(probes).values()]
    seconds = (max(times) - t0) if done else None
    await asyncio.sleep(0.5)
    reports = await pool.report()
    return {
        "phase": name,
        "converged": len(pool.synced) if probes is None else len(pool.converged(probes)),
        "all_converged_s": None if seconds is None else round(seconds, 2),
        "healthz_max_ms": round(health.worst.get(name, 0.0) * 1000),
        "healthz_failed": health.failures.get(name, 0),
        "peak_rss_mb": round(server.monitor.peak / 2**20),
        "rss_after_mb": round(server.monitor.rss() / 2**20),
        "cp_cpu_s": round(server.monitor.cpu_seconds() - cpu_before, 1),
        "clients_cpu_s": round(pool.cpu_seconds() - client_cpu_before, 1),
        "reconnects": sum(r["reconnects"] for r in reports),
        "errors": dict(sum((Counter(r.get("errors", {})) for r in reports), Counter())),
    }


async def storm(args: argparse.Namespace, workdir: Path) -> list[dict[str, object]]:
    spec = mesh.MeshSpec(services=args.services, virtual_services=args.services // 5,
                         destination_rules=args.services // 5, namespaces=10)
    changes = plan.build(spec, args.groups, 0)
    mesh.write_folder(workdir / "mesh", changes.initial)
    server = Server(workdir, shlex.split(args.cp_args), args.cp_pythonpath)
    results: list[dict[str, object]] = []
    pool: ClientPool | None = None
    stalled: Stalled | None = None
    health: Health | None = None
    try:
        ready = server.start()
        print(f"control plane ready in {ready:.1f} s", flush=True)
        health = Health(server.monitoring_port).start()
        pool = ClientPool(ClientConfig(
            target=f"127.0.0.1:{server.xds_port}", proxies=args.proxies, groups=args.groups,
            namespaces=spec.namespaces, mode=args.mode, processes=args.processes,
        ))
        await pool.start()
        health.phase = "connect"
        t0 = await pool.connect()
        results.append(await phase("connect", pool, server, health, t0, args.timeout))
        print(results[-1], flush=True)
        added, routing = changes.added, changes.routing
        if args.stalled:
            stalled = Stalled(f"127.0.0.1:{server.xds_port}", args.stalled, args.groups,
                              spec.namespaces)
            await stalled.open()
        if args.push and added is not None and routing is not None:
            # A new service: every proxy gets new clusters, endpoints, listeners and routes
            # at once (the push wave the push throttle paces).
            await pool.register(added.change.id, list(added.change.probes))
            if server.monitor is not None:
                server.monitor.mark()  # the wave's own peak
            health.phase = "push"
            t0 = time.monotonic()
            mesh.write_folder(workdir / "mesh", added.state, routing.changed + added.changed)
            results.append(await phase("push", pool, server, health, t0, args.timeout,
                                       [p.id for p in added.change.probes]))
            print(results[-1], flush=True)
        if args.restart:
            pool.synced.clear()
            health.phase = "down"
            server.kill()
            t0 = time.monotonic()
            ready = server.start()
            health.phase = "restart"
            result = await phase("restart", pool, server, health, t0, args.timeout)
            result["ready_s"] = round(ready, 2)
            results.append(result)
            print(results[-1], flush=True)
    finally:
        if stalled is not None:
            await stalled.close()
        if pool is not None:
            await pool.stop()
        if health is not None:
            health.stop()
        server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxies", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--mode", choices=("sotw", "delta"), default="sotw")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-restart", dest="restart", action="store_false")
    parser.add_argument("--no-push", dest="push", action="store_false",
                        help="skip the push wave (a new service) between connect and restart")
    parser.add_argument("--stalled", type=int, default=0, metavar="N",
                        help="before the push wave, N more proxies subscribe and stop reading")
    parser.add_argument("--cp-args", default="", help="extra flags for controlplane serve")
    parser.add_argument("--workdir", type=Path, help="keep the mesh and the log here")
    parser.add_argument("--cp-pythonpath", help="run the control plane from another source tree "
                                                "(e.g. an unchanged one, for before/after)")
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(storm(args, args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="storm-") as tmp:
            results = asyncio.run(storm(args, Path(tmp)))
    print()
    print("| phase | converged | all converged (s) | max /healthz/ready (ms) | peak RSS (MB) "
          "| RSS after (MB) | CP CPU (s) | clients CPU (s) | reconnects |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        converged = r["all_converged_s"]
        if r.get("ready_s") is not None and converged is not None:  # restart: from the kill
            converged = f"{converged} ({converged - r['ready_s']:.1f} once ready)"
        print(f"| {r['phase']} | {r['converged']}/{args.proxies} | {converged} "
              f"| {r['healthz_max_ms']} | {r['peak_rss_mb']} | {r['rss_after_mb']} | {r['cp_cpu_s']} "
              f"| {r['clients_cpu_s']} | {r['reconnects']} {r['errors'] or ''} |")


if __name__ == "__main__":
    main()
