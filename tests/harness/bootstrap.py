"""A real Envoy bootstrapped by ``controlplane bootstrap``, as a user would: xDS over TLS to
the control plane, a token for its own identity minted from the CA folder, the root that
signs the xDS server's certificate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.harness.envoy import EnvoyProcess
from tests.harness.ports import free_port


def bootstrapped_envoy(
    workdir: Path,
    ca_dir: Path,
    xds_tls_port: int,
    name: str,
    *,
    address: str,
    service_account: str,
    namespace: str = "default",
    delta: bool = False,
) -> EnvoyProcess:
    """An Envoy for the workload ``name`` (label ``app=<name>``) at ``address``, not started."""
    path = workdir / f"{name}-bootstrap.json"
    command = [
        sys.executable, "-m", "controlplane", "bootstrap",
        "-n", namespace, "-s", service_account, "--labels", f"app={name}", "--ip", address,
        "--xds-address", f"127.0.0.1:{xds_tls_port}", "--ca-dir", str(ca_dir),
        "--token-ttl", "3600", "--admin-port", str(free_port()),
        "--stats-port", "0", "--health-port", "0", "-o", str(path),
        *(["--delta"] if delta else []),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return EnvoyProcess(json.loads(path.read_text()), workdir, name=name)
