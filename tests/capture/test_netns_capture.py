"""The capture rules applied by ``controlplane capture --netns`` in a real network namespace
(root and iptables): the app's outbound TCP reaches 15001 and inbound reaches 15006, while the
proxy's UID/GID, excluded ports and ranges and the status ports go where they were sent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from controlplane.pods.netns import Network, PodNetns, missing_requirements

pytestmark = pytest.mark.skipif(bool(missing_requirements()),
                                reason=f"needs {', '.join(missing_requirements())} (network namespaces, iptables)")
ECHO = ["-m", "controlplane.pods.echo_app"]


def _start(pod: PodNetns, name: str, *ports: int) -> subprocess.Popen[str]:
    process = subprocess.Popen([*pod.exec_prefix(), sys.executable, *ECHO, name, *map(str, ports)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "serving"
    return process


def _host_nat() -> str:
    text = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, timeout=20,
                          check=True).stdout
    return "\n".join(line for line in text.splitlines() if not line.startswith(("#", ":")))


def _curl(pod: PodNetns, url: str, uid: int | None = None) -> str:
    user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"] if uid is not None else []
    result = subprocess.run([*pod.exec_prefix(), *user, "curl", "-s", "-m", "5", url],
                            capture_output=True, text=True, timeout=20, check=False)
    return json.loads(result.stdout)["name"] if result.stdout.startswith("{") else f"error {result.returncode}"


@pytest.fixture
def pods() -> Iterator[tuple[PodNetns, PodNetns, str]]:
    processes: list[subprocess.Popen[str]] = []
    host_before = _host_nat()
    with Network.create() as net:
        app, peer = net.add_pod("app"), net.add_pod("peer")
        try:
            processes.append(_start(app, "envoy-outbound", 15001))
            processes.append(_start(app, "envoy-inbound", 15006))
            processes.append(_start(app, "app", 9080, 15021))
            processes.append(_start(peer, "peer", 8080, 7777))
            result = subprocess.run(
                [sys.executable, "-m", "controlplane", "capture", "--netns", app.netns,
                 "-d", "15090,15021,15020", "-o", "7777"],
                capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, result.stderr
            yield app, peer, host_before
        finally:
            for process in processes:
                process.kill()
                process.wait()


def test_outbound_is_captured_except_the_proxy_and_excluded_ports(pods) -> None:
    app, peer, _ = pods
    assert _curl(app, f"http://{peer.ip}:8080/") == "envoy-outbound"
    assert _curl(app, f"http://{peer.ip}:7777/") == "peer"  # excludeOutboundPorts
    assert _curl(app, f"http://{peer.ip}:8080/", uid=1337) == "peer"  # the proxy's own traffic
    assert _curl(app, f"http://{peer.ip}:8080/", uid=1000) == "envoy-outbound"
    assert _curl(app, "http://127.0.0.1:9080/") == "app"  # loopback is never captured


def test_inbound_is_captured_except_status_ports(pods) -> None:
    app, peer, _ = pods
    assert _curl(peer, f"http://{app.ip}:9080/") == "envoy-inbound"
    assert _curl(peer, f"http://{app.ip}:15021/") == "app"  # excluded: readiness


def test_rules_are_in_the_pods_namespace_only(pods) -> None:
    app, _, host_before = pods
    inside = subprocess.run([*app.exec_prefix(), "iptables-save", "-t", "nat"], capture_output=True,
                            text=True, timeout=20, check=True).stdout
    assert "ISTIO_OUTPUT" in inside and "--to-ports 15001" in inside
    assert _host_nat() == host_before  # the machine's own rules are untouched
