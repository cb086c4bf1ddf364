"""The webhook as ``controlplane serve --injection-webhook-port`` serves it: TLS with a
certificate from the control plane's CA, Istio's namespace selectors checked against the
Namespaces the control plane reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controlplane.ca import load_ca_folder
from tests.harness.control_plane import served_control_plane
from tests.harness.ports import free_port
from tests.inject.admission import FAIL, admit, pod

NAMESPACES = """\
apiVersion: v1
kind: Namespace
metadata: {name: mesh, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
"""


async def test_served_webhook_injects_only_selected_namespaces(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "namespaces.yaml").write_text(NAMESPACES)
    port = free_port()
    with served_control_plane(tmp_path, config, "--injection-webhook-port", str(port)) as cp:
        root = load_ca_folder(cp.ca_dir, "cluster.local").bundle.pem
        url = f"https://127.0.0.1:{port}/inject"
        injected = await asyncio.to_thread(admit, url, pod(), "mesh", root, FAIL)
        plain = await asyncio.to_thread(admit, url, pod(), "plain", root, FAIL)
    assert "sidecar.istio.io/status" in injected["metadata"]["annotations"]
    assert "sidecar.istio.io/status" not in (plain["metadata"].get("annotations") or {})
    assert [c["name"] for c in plain["spec"]["containers"]] == ["reviews"]


def _served_serial(port: int, root: str) -> int:
    import socket
    import ssl

    from cryptography import x509

    context = ssl.create_default_context(cadata=root)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_webhook_certificate_is_renewed(tmp_path: Path) -> None:
    from tests.harness.wait import wait_for

    config = tmp_path / "config"
    config.mkdir()
    port = free_port()
    with served_control_plane(tmp_path, config, "--injection-webhook-port", str(port), "--cert-ttl", "6") as cp:
        root = load_ca_folder(cp.ca_dir, "cluster.local").bundle.pem
        first = await asyncio.to_thread(_served_serial, port, root)
        await asyncio.to_thread(wait_for, lambda: _served_serial(port, root) != first, deadline=20,
                                interval=0.5, message="a renewed webhook certificate")
