"""Run the guided tour: bring the mesh up, then for each phase change the YAML while
traffic flows, measure how long the change took to reach every sidecar, and show
what the traffic saw. Everything started is stopped at the end, on Ctrl-C, on
SIGTERM and on any exception (the Supervisor's context)."""

from __future__ import annotations

import http.client
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from controlplane.demo.ingress import HOST, HTTPS_PORT, Ingress, start_ingress, write_ingress_config
from controlplane.demo.mesh import MeshOptions, free_port, start_mesh
from controlplane.demo.phases import Phase, select
from controlplane.demo.propagation import Propagation, wait_until_applied, wait_until_drained
from controlplane.demo.stats import WindowSummary
from controlplane.demo.supervisor import Supervisor, poll_until
from controlplane.demo.topology import (
    BASE_DIR,
    DEFAULT_BLOCK,
    LOADGEN,
    SERVICE_PORT,
    Workload,
    copy_config,
    load_workloads,
    reset_config_dir,
    validate_block,
)
from controlplane.demo.traffic import DirectCall, Target, Traffic, get_json
from controlplane.demo.view import PhaseResult, PhaseView, render_phase, render_summary

REFRESH_SECONDS = 0.25


@dataclass(frozen=True)
class TourOptions:
    workdir: Path | None = None
    phase: str | None = None  # run up to this phase (or only it, with ``only``)
    only: bool = False
    duration: float = 15.0  # seconds of traffic per phase
    keep_running: bool = False
    rate: float = 40.0  # requests per second to productpage
    block: str = DEFAULT_BLOCK  # the 127.x.y of every workload address
    live: bool = True
    xds_tls: bool = True
    propagation_timeout: float = 30.0
    grace_seconds: float = 3.0
    control_plane_command: tuple[str, ...] = ()  # () = this Python's ``-m controlplane``


@dataclass(frozen=True)
class Endpoints:
    front: Target  # productpage through loadgen's sidecar
    plaintext: Target  # productpage's inbound listener, called without a sidecar
    direct: tuple[DirectCall, ...] = ()  # loadgen's own calls beside the user traffic
    gateway: Target | None = None  # productpage through the ingress gateway's Gateway API listener
    gateway_caller: str = ""  # the ingress gateway's name, the caller of productpage then

    def entry(self, phase: Phase) -> tuple[Target, str]:
        """Where the users' requests enter during ``phase``, and who calls productpage."""
        if phase.through_gateway and self.gateway is not None:
            return self.gateway, self.gateway_caller
        return self.front, LOADGEN


def endpoints(workloads: list[Workload], ingress: Ingress | None = None) -> Endpoints:
    by_name = {w.service: w for w in workloads}
    loadgen, productpage = by_name[LOADGEN], by_name["productpage"]
    assert loadgen.egress_address and loadgen.egress_port and productpage.inbound_port
    host = f"productpage:{productpage.inbound_port}"
    egress = (loadgen.egress_address, loadgen.egress_port)
    return Endpoints(
        front=Target(*egress, host),
        plaintext=Target(productpage.address, productpage.inbound_port, host),
        # Callers other than productpage's users: loadgen straight to reviews (only
        # productpage may, from the authz phase on) and to productpage's /admin (denied).
        direct=(
            DirectCall(LOADGEN, "reviews", Target(*egress, f"reviews:{SERVICE_PORT}")),
            DirectCall(LOADGEN, "productpage", Target(*egress, host, "/admin")),
        ),
        gateway=ingress.gateway_api_target() if ingress else None,
        gateway_caller=ingress.gateway.service if ingress else "",
    )


def apply_phase(
    phase: Phase, workloads: list[Workload], options: TourOptions, config_dir: Path
) -> Propagation | None:
    """Write the phase's YAML and wait until every sidecar concerned shows it."""
    since = time.monotonic()
    if not phase.apply(config_dir, options.block) or phase.check is None:
        return None
    concerned = [w for w in workloads if phase.applies_to(w)]
    propagation = wait_until_applied(
        concerned, phase.resource, phase.check, since=since, timeout=options.propagation_timeout
    )
    if phase.settle:
        wait_until_drained(concerned, timeout=options.propagation_timeout)
    return propagation


@contextmanager
def _display(console: Console, live: bool) -> Iterator[Live | None]:
    if live and console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=False) as view:
            yield view
    else:
        yield None


def run_phases(
    phases: tuple[Phase, ...],
    traffic: Traffic,
    supervisor: Supervisor,
    workloads: list[Workload],
    options: TourOptions,
    config_dir: Path,
    console: Console,
    probe_address: str,
    ends: Endpoints,
) -> list[PhaseResult]:
    results: list[PhaseResult] = []
    with _display(console, options.live) as live:
        for number, phase in enumerate(phases, start=1):
            heading = f"[bold]phase {number}/{len(phases)}: {phase.title}[/] - {phase.story}"
            if live is None:
                console.print(heading)
            elif phase.overlay is not None:
                live.update(
                    Text.from_markup(f"{heading}\nwriting the YAML, waiting for every proxy concerned...")
                )
            propagation = apply_phase(phase, workloads, options, config_dir)
            traffic.retarget(*ends.entry(phase))
            traffic.new_window()
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < options.duration:
                supervisor.check_alive()
                if live is not None:
                    view = PhaseView(
                        phase, number, len(phases), traffic.window.summary(), elapsed,
                        options.duration, propagation, probe_address,
                    )  # fmt: skip
                    live.update(render_phase(view))
                time.sleep(min(REFRESH_SECONDS, max(0.0, options.duration - elapsed)))
            summary: WindowSummary = traffic.new_window().summary()
            results.append(PhaseResult(phase, summary, propagation))
            final = PhaseView(
                phase, number, len(phases), summary, options.duration, options.duration,
                propagation, probe_address,
            )  # fmt: skip
            # Printed above the live region: finished phases stay on screen.
            (live.console if live is not None else console).print(render_phase(final))
    return results


def write_results(path: Path, results: list[PhaseResult], workdir: Path) -> None:
    payload = {
        "workdir": str(workdir),
        "complete": all(r.propagation is None or r.propagation.complete for r in results),
        "phases": [r.to_json() for r in results],
    }
    path.write_text(json.dumps(payload, indent=1))


def how_to_use(workloads: list[Workload], ends: Endpoints, workdir: Path, ingress: Ingress) -> str:
    front = ends.front
    url = f"http://{front.connect_host}:{front.connect_port}/"
    admins = ", ".join(f"{w.name} {w.admin_url}" for w in workloads)
    return "\n".join(
        [
            "The mesh keeps running; Ctrl-C stops every process.",
            f"  curl -s -H 'Host: {front.host_header}' {url}                   # through loadgen's sidecar",
            f"  curl -s -H 'Host: {front.host_header}' -H 'end-user: jason' {url}",
            f"  curl -s -H 'Host: reviews:{SERVICE_PORT}' {url}                    # loadgen -> reviews: 403 from the authz phase on",
            *(f"  {line}    # through the ingress gateway" for line in ingress.curl_lines()),
            f"  config folder (edit the YAML, the control plane picks it up): {workdir / 'config'}",
            f"  logs: {workdir / 'logs'}   results: {workdir / 'results.json'}",
            f"  Envoy admin: {admins}",
            "  policies a sidecar enforces: controlplane proxy-config authz --envoy-admin <its admin URL>",
        ]
    )


def _routed(front: Target) -> bool:
    """One request through the loadgen's sidecar to productpage and on to its backends."""
    conn = http.client.HTTPConnection(front.connect_host, front.connect_port, timeout=5)
    try:
        status, _ = get_json(conn, front, {})
        return status == 200
    except OSError:
        return False
    finally:
        conn.close()


def run_tour(options: TourOptions, console: Console | None = None) -> int:
    console = console or Console()
    validate_block(options.block)
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="controlplane-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # The monitoring port is chosen here so that the mesh graph's address can be printed.
    mesh_options = MeshOptions(workdir=workdir, xds_tls=options.xds_tls, monitoring_port=free_port())
    if options.control_plane_command:
        mesh_options = replace(mesh_options, control_plane_command=options.control_plane_command)
    config_dir = mesh_options.config_dir
    reset_config_dir(config_dir)
    copy_config(BASE_DIR, config_dir, options.block)
    workloads = load_workloads(config_dir)
    ingress = write_ingress_config(config_dir, workdir, options.block)  # not one of the sidecars
    ends = endpoints(workloads, ingress)
    proxies = [*workloads, ingress.gateway]  # whose config a phase may change
    silent, phases = select(options.phase, options.only)
    console.print(f"work folder: {workdir} (config, logs, results.json)")
    launched = time.monotonic()
    with Supervisor(workdir, grace_seconds=options.grace_seconds) as supervisor:
        with console.status("starting the control plane, the sidecars and the apps"):
            xds_port = start_mesh(supervisor, workloads, mesh_options)
            start_ingress(supervisor, ingress, mesh_options, xds_port)
            for phase in silent:
                apply_phase(phase, proxies, options, config_dir)
        if not poll_until(lambda: _routed(ends.front), timeout=60.0):
            raise RuntimeError(f"no request through the mesh succeeded; see {workdir / 'logs'}")
        console.print(
            f"mesh up: {len(workloads)} sidecars, control plane, apps; first routed request "
            f"{time.monotonic() - launched:.1f} s after start; logs in {workdir / 'logs'}"
        )
        console.print(f"ingress gateway: {ingress.http_url()} and https://{HOST}:{HTTPS_PORT}/productpage "
                      f"on {ingress.gateway.address} (CA {ingress.ca_path})")
        console.print(
            f"mesh graph (Istio's metrics, live): http://{mesh_options.xds_host}:"
            f"{mesh_options.monitoring_port}/graph"
        )
        traffic = Traffic(ends.front, rate=options.rate, probe=ends.plaintext, direct=ends.direct)
        probe_address = f"{ends.plaintext.connect_host}:{ends.plaintext.connect_port}"
        traffic.start()
        try:
            results = run_phases(
                phases, traffic, supervisor, proxies, options, config_dir, console, probe_address, ends
            )
        finally:
            traffic.stop()
        write_results(workdir / "results.json", results, workdir)
        console.print(render_summary(results))
        if options.keep_running:
            console.print(how_to_use(workloads, ends, workdir, ingress))
            while True:  # until Ctrl-C or SIGTERM; stop if a process dies
                time.sleep(1.0)
                supervisor.check_alive()
    complete = all(r.propagation is None or r.propagation.complete for r in results)
    return 0 if complete else 1
